#include "status.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <systemd/sd-bus.h>

#include "service.h"
#include "util.h"

#define DEFAULT_TEMPLATE "{unseen}"
/* How long a read of the daemon's properties may take. */
#define STATUS_CALL_TIMEOUT_USEC (5 * UINT64_C(1000000))

struct st_box {
	char *account, *mailbox, *from, *subject;
	int watched;
	int32_t unseen; /* -1: not known yet */
	int64_t when;
};

struct st_account {
	char *name, *state;
	int ok;
	uint32_t unseen;
};

/* What the daemon said, or !running. */
struct snapshot {
	bool running;
	uint32_t unseen;
	struct st_box *box;
	size_t n_box;
	struct st_account *acct;
	size_t n_acct;
};

static void
snapshot_clear(struct snapshot *s)
{
	for (size_t i = 0; i < s->n_box; i++) {
		free(s->box[i].account);
		free(s->box[i].mailbox);
		free(s->box[i].from);
		free(s->box[i].subject);
	}
	for (size_t i = 0; i < s->n_acct; i++) {
		free(s->acct[i].name);
		free(s->acct[i].state);
	}
	free(s->box);
	free(s->acct);
	*s = (struct snapshot){0};
}

/* ---- reading the properties ---- */

static int
read_mailboxes(sd_bus_message *m, struct snapshot *s)
{
	const char *account, *mailbox, *from, *subject;
	int watched, r;
	int32_t unseen;
	int64_t when;

	r = sd_bus_message_enter_container(m, 'a', "(ssbissx)");
	while (r >= 0 && (r = sd_bus_message_read(m, "(ssbissx)", &account,
						  &mailbox, &watched, &unseen,
						  &from, &subject, &when)) > 0) {
		s->box = xrealloc(s->box, (s->n_box + 1) * sizeof(*s->box));
		s->box[s->n_box++] = (struct st_box){
		    xstrdup(account), xstrdup(mailbox), xstrdup(from),
		    xstrdup(subject), watched, unseen, when};
	}
	return r < 0 ? r : sd_bus_message_exit_container(m);
}

static int
read_accounts(sd_bus_message *m, struct snapshot *s)
{
	const char *name, *state;
	uint32_t unseen;
	int ok, r;

	r = sd_bus_message_enter_container(m, 'a', "(sbsu)");
	while (r >= 0 && (r = sd_bus_message_read(m, "(sbsu)", &name, &ok,
						  &state, &unseen)) > 0) {
		s->acct =
		    xrealloc(s->acct, (s->n_acct + 1) * sizeof(*s->acct));
		s->acct[s->n_acct++] = (struct st_account){
		    xstrdup(name), xstrdup(state), ok, unseen};
	}
	return r < 0 ? r : sd_bus_message_exit_container(m);
}

/* Reads every property into s (cleared first). Returns 0, or a negative
 * errno with s->running false when no daemon answers (-ESRCH) or the
 * answer makes no sense; *err says what the bus said. */
static int
fetch(sd_bus *bus, struct snapshot *s, sd_bus_error *err)
{
	sd_bus_message *reply = NULL;
	const char *name;
	int r;

	snapshot_clear(s);
	r = sd_bus_call_method(bus, SERVICE_NAME, SERVICE_PATH,
			       "org.freedesktop.DBus.Properties", "GetAll",
			       err, &reply, "s", SERVICE_IFACE);
	if (r < 0) {
		if (sd_bus_error_has_names(err,
					   SD_BUS_ERROR_SERVICE_UNKNOWN,
					   SD_BUS_ERROR_NAME_HAS_NO_OWNER,
					   SD_BUS_ERROR_UNKNOWN_OBJECT,
					   SD_BUS_ERROR_UNKNOWN_INTERFACE))
			r = -ESRCH;
		return r;
	}
	r = sd_bus_message_enter_container(reply, 'a', "{sv}");
	while (r >= 0 &&
	       (r = sd_bus_message_enter_container(reply, 'e', "sv")) > 0) {
		r = sd_bus_message_read(reply, "s", &name);
		if (r < 0)
			break;
		if (!strcmp(name, "Unseen"))
			r = sd_bus_message_read(reply, "v", "u", &s->unseen);
		else if (!strcmp(name, "Mailboxes") &&
			 (r = sd_bus_message_enter_container(
			      reply, 'v', "a(ssbissx)")) >= 0)
			r = read_mailboxes(reply, s) < 0
				? -EBADMSG
				: sd_bus_message_exit_container(reply);
		else if (!strcmp(name, "Accounts") &&
			 (r = sd_bus_message_enter_container(reply, 'v',
							     "a(sbsu)")) >= 0)
			r = read_accounts(reply, s) < 0
				? -EBADMSG
				: sd_bus_message_exit_container(reply);
		else
			r = sd_bus_message_skip(reply, "v");
		if (r >= 0)
			r = sd_bus_message_exit_container(reply);
	}
	sd_bus_message_unref(reply);
	if (r < 0) {
		snapshot_clear(s);
		return r;
	}
	s->running = true;
	return 0;
}

/* ---- printing ---- */

/* The box with the newest last message, or NULL. */
static const struct st_box *
newest(const struct snapshot *s)
{
	const struct st_box *best = NULL;

	for (size_t i = 0; i < s->n_box; i++)
		if (s->box[i].when && (!best || s->box[i].when > best->when))
			best = &s->box[i];
	return best;
}

/* The total of unseen messages as text: "?" while no mailbox's count is
 * known yet (mailwatch just started, or started while the server is
 * away), where the daemon's total says 0. */
static void
put_unseen(FILE *f, const struct snapshot *s)
{
	bool known = !s->n_box;

	for (size_t i = 0; i < s->n_box && !known; i++)
		known = s->box[i].unseen >= 0;
	if (known)
		fprintf(f, "%" PRIu32, s->unseen);
	else
		fputc('?', f);
}

/* How text from mail, servers and the config is put where a status bar
 * may read it as markup. A sender must not style the bar, break it with
 * an '&', or give it a command to run on a click. */
enum escape {
	ESC_NONE,  /* the plain output, for people */
	ESC_BAR,   /* --format: a '{' after a zero-width space, since
		      polybar's and lemonbar's "%{A:command:}" tags have
		      no escape that works (a space that shows nothing) */
	ESC_PANGO, /* --json, --pango: Pango markup's entities (waybar,
		      i3blocks' markup = pango) */
};

static void
put_value(FILE *f, const char *v, enum escape e)
{
	for (; *v; v++) {
		if (e == ESC_PANGO && *v == '&')
			fputs("&amp;", f);
		else if (e == ESC_PANGO && *v == '<')
			fputs("&lt;", f);
		else if (e == ESC_PANGO && *v == '>')
			fputs("&gt;", f);
		else if (e == ESC_PANGO && *v == '"')
			fputs("&quot;", f);
		else if (e == ESC_PANGO && *v == '\'')
			fputs("&#39;", f);
		else if (e == ESC_BAR && *v == '{')
			fputs("\u200b{", f);
		else
			fputc(*v, f);
	}
}

/* Expands template into f: {unseen}, {watched}, {mailboxes}, and the
 * newest message's {from}, {subject}, {account}, {mailbox}, escaped as e
 * says; {{ and }} are braces. Returns NULL, or where the template goes
 * wrong: an unknown placeholder, or a brace not doubled outside one. */
static const char *
expand(FILE *f, const char *t, const struct snapshot *s, enum escape e)
{
	const struct st_box *last = newest(s);
	size_t watched = 0;

	for (size_t i = 0; i < s->n_box; i++)
		watched += !!s->box[i].watched;
	while (*t) {
		const char *end;
		size_t n;

		if ((t[0] == '{' && t[1] == '{') ||
		    (t[0] == '}' && t[1] == '}')) {
			fputc(*t, f);
			t += 2;
			continue;
		}
		if (*t == '}')
			return t; /* one not doubled */
		if (*t != '{') {
			fputc(*t++, f);
			continue;
		}
		end = strchr(t, '}');
		if (!end)
			return t;
		n = (size_t)(end - t - 1);
#define IS(name) (n == strlen(name) && !strncmp(t + 1, name, n))
		if (IS("unseen"))
			put_unseen(f, s);
		else if (IS("watched"))
			fprintf(f, "%zu", watched);
		else if (IS("mailboxes"))
			fprintf(f, "%zu", s->n_box);
		else if (IS("from"))
			put_value(f, last ? last->from : "", e);
		else if (IS("subject"))
			put_value(f, last ? last->subject : "", e);
		else if (IS("account"))
			put_value(f, last ? last->account : "", e);
		else if (IS("mailbox"))
			put_value(f, last ? last->mailbox : "", e);
		else
			return t;
#undef IS
		t = end + 1;
	}
	return NULL;
}

/* Writes s as a JSON string literal. */
static void
json_string(FILE *f, const char *s)
{
	fputc('"', f);
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;

		if (c == '"' || c == '\\')
			fprintf(f, "\\%c", c);
		else if (c == '\n')
			fputs("\\n", f);
		else if (c < 0x20 || c == 0x7f)
			fprintf(f, "\\u%04x", c);
		else
			fputc(c, f);
	}
	fputc('"', f);
}

static bool
all_ok(const struct snapshot *s)
{
	for (size_t i = 0; i < s->n_acct; i++)
		if (!s->acct[i].ok)
			return false;
	return true;
}

/* The mailboxes with unseen mail and the accounts not well, one per
 * line, for a tooltip or the plain output (all: every mailbox and
 * account, with its last message). */
static void
details(FILE *f, const struct snapshot *s, bool all, enum escape e)
{
	const char *sep = "";
	size_t quiet = 0;

	for (size_t i = 0; i < s->n_box; i++) {
		const struct st_box *b = &s->box[i];

		if (!all && b->unseen <= 0)
			continue;
		/* Nothing to say but "0 unseen": counted below (trial N
		 * read 58 such lines). */
		if (!b->unseen && b->watched && !b->when) {
			quiet++;
			continue;
		}
		fputs(sep, f);
		put_value(f, b->account, e);
		fputc('/', f);
		put_value(f, b->mailbox, e);
		fputs(": ", f);
		if (b->unseen < 0)
			fputs("? unseen", f);
		else
			fprintf(f, "%" PRId32 " unseen", b->unseen);
		if (!b->watched)
			fputs(" (not watched now)", f);
		if (all && b->when) {
			/* As the log says them (trial AF: "last from : "). */
			fputs("; last from ", f);
			put_value(f, *b->from ? b->from : "(no sender)", e);
			fputs(": ", f);
			put_value(f, *b->subject ? b->subject : "(no subject)",
				  e);
		}
		sep = "\n";
	}
	if (quiet) {
		fprintf(f, "%s%zu other mailbox%s: nothing unseen", sep, quiet,
			quiet == 1 ? "" : "es");
		sep = "\n";
	}
	/* The plain output says how each account is watched ("4 mailboxes
	 * over 1 connection (NOTIFY)"); a tooltip only what is wrong. */
	for (size_t i = 0; i < s->n_acct; i++) {
		if (s->acct[i].ok && !all)
			continue;
		fputs(sep, f);
		put_value(f, s->acct[i].name, e);
		fputs(": ", f);
		put_value(f, s->acct[i].state, e);
		sep = "\n";
	}
}

enum output { O_TEXT, O_FORMAT, O_JSON };

/* The whole output for s as one string (caller frees), ending in a
 * newline. template is good (template_error() is NULL); pango asks for
 * Pango's escapes in the --format output too. */
static char *
render(const struct snapshot *s, enum output how, const char *template,
       bool pango)
{
	char *out = NULL, *tip = NULL;
	size_t len = 0, tip_len = 0;
	FILE *f = open_memstream(&out, &len), *t;

	if (!f)
		abort();
	if (how == O_TEXT && s->running) {
		put_unseen(f, s);
		fputs(" unseen\n", f);
		details(f, s, true, ESC_NONE);
	} else if (how == O_TEXT) {
		fputs("mailwatch is not running", f);
	} else if (how == O_FORMAT) {
		if (s->running)
			expand(f, template, s, pango ? ESC_PANGO : ESC_BAR);
	} else {
		const char *class = !s->running	 ? "stopped"
				    : !all_ok(s) ? "disconnected"
				    : s->unseen	 ? "unseen"
						 : "none";
		char *text = NULL;
		size_t text_len = 0;
		FILE *tf = open_memstream(&text, &text_len);

		if (!tf)
			abort();
		/* Waybar reads text and tooltip as Pango markup. */
		if (s->running)
			expand(tf, template, s, ESC_PANGO);
		fclose(tf);
		t = open_memstream(&tip, &tip_len);
		if (!t)
			abort();
		if (s->running)
			details(t, s, false, ESC_PANGO);
		else
			fputs("mailwatch is not running", t);
		fclose(t);
		fputs("{\"text\":", f);
		json_string(f, text);
		fputs(",\"tooltip\":", f);
		json_string(f, tip);
		fprintf(f, ",\"class\":\"%s\",\"unseen\":%" PRIu32, class,
			s->unseen);
		fputs(",\"mailboxes\":[", f);
		for (size_t i = 0; i < s->n_box; i++) {
			const struct st_box *b = &s->box[i];

			fputs(i ? ",{\"account\":" : "{\"account\":", f);
			json_string(f, b->account);
			fputs(",\"mailbox\":", f);
			json_string(f, b->mailbox);
			fprintf(f,
				",\"watched\":%s,\"unseen\":%" PRId32
				",\"last_time\":%" PRId64 ",\"last_from\":",
				b->watched ? "true" : "false", b->unseen,
				b->when / 1000000);
			json_string(f, b->from);
			fputs(",\"last_subject\":", f);
			json_string(f, b->subject);
			fputc('}', f);
		}
		fputs("],\"accounts\":[", f);
		for (size_t i = 0; i < s->n_acct; i++) {
			const struct st_account *a = &s->acct[i];

			fputs(i ? ",{\"name\":" : "{\"name\":", f);
			json_string(f, a->name);
			fprintf(f, ",\"watching\":%s,\"unseen\":%" PRIu32
				   ",\"state\":",
				a->ok ? "true" : "false", a->unseen);
			json_string(f, a->state);
			fputc('}', f);
		}
		fputs("]}", f);
		free(text);
		free(tip);
	}
	fputc('\n', f);
	fclose(f);
	return out;
}

/* Where template goes wrong (expand() with nothing known), or NULL. */
static const char *
template_error(const char *template)
{
	char *out = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&out, &len);
	const char *bad;

	if (!f)
		abort();
	bad = expand(f, template, &(struct snapshot){0}, ESC_NONE);
	fclose(f);
	free(out);
	return bad;
}

/* ---- following ---- */

static int
on_signal(sd_bus_message *m, void *ud, sd_bus_error *err)
{
	(void)m;
	(void)err;
	*(bool *)ud = true;
	return 0;
}

static void
usage(FILE *f)
{
	fputs("usage: mailwatch status [--json] [--follow] "
	      "[--format TEMPLATE] [--pango]\n"
	      "Prints the unseen counts of the running mailwatch.\n\n"
	      "  -j, --json             one JSON object per line (waybar's "
	      "custom module\n"
	      "                         reads it as is)\n"
	      "  -f, --follow           print again at each change until "
	      "interrupted\n"
	      "  -F, --format TEMPLATE  the text: {unseen} {watched} "
	      "{mailboxes}, and the\n"
	      "                         newest message's {from} {subject} "
	      "{account} {mailbox}\n"
	      "                         (default " DEFAULT_TEMPLATE ")\n"
	      "  -p, --pango            escape what it puts in the template "
	      "as Pango markup\n"
	      "                         (for i3blocks' markup = pango; "
	      "--json does)\n"
	      "  -h, --help             this help\n\n"
	      "Exit status 3 when mailwatch is not running. See "
	      "mailwatch(1).\n",
	      f);
}

/* Says what is wrong at bad in template; returns the exit status for
 * it. */
static int
bad_template(const char *template, const char *bad)
{
	const char *end = strchr(bad, '}');

	fprintf(stderr, "mailwatch status: --format %s: ", template);
	if (*bad == '}')
		fprintf(stderr, "a '}' not doubled (write }} for a brace): "
				"'%s'\n",
			bad);
	else if (!end)
		fprintf(stderr, "a '{' without its '}' (write {{ for a "
				"brace): '%s'\n",
			bad);
	else
		fprintf(stderr, "unknown placeholder %.*s; known are "
				"{unseen}, {watched}, {mailboxes}, {from}, "
				"{subject}, {account} and {mailbox}\n",
			(int)(end - bad + 1), bad);
	return 2;
}

int
status_main(int argc, char **argv)
{
	static const struct option longopts[] = {
	    {"json", no_argument, NULL, 'j'},
	    {"follow", no_argument, NULL, 'f'},
	    {"format", required_argument, NULL, 'F'},
	    {"pango", no_argument, NULL, 'p'},
	    {"help", no_argument, NULL, 'h'},
	    {0},
	};
	const char *template = NULL, *bad;
	enum output how = O_TEXT;
	bool follow = false, dirty = true, pango = false, stuck = false;
	struct snapshot snap = {0};
	sd_bus *bus = NULL;
	char *last = NULL;
	int c, r, status = 0;

	/* For getopt's messages. */
	argv[0] = (char *)"mailwatch status";
	while ((c = getopt_long(argc, argv, "jfF:ph", longopts, NULL)) != -1) {
		switch (c) {
		case 'j':
			how = O_JSON;
			break;
		case 'f':
			follow = true;
			break;
		case 'F':
			template = optarg;
			break;
		case 'p':
			pango = true;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "mailwatch status: unexpected argument '%s'\n",
			argv[optind]);
		usage(stderr);
		return 2;
	}
	/* --pango alone is for a bar too (a trial's i3blocks got the
	 * output for people, sender markup and all): the default template. */
	if ((template || pango) && how == O_TEXT)
		how = O_FORMAT;
	if (!template)
		template = DEFAULT_TEMPLATE;
	/* At once, whether a mailwatch can be reached or not. */
	bad = template_error(template);
	if (bad)
		return bad_template(template, bad);

	r = sd_bus_open_user(&bus);
	if (r < 0) {
		char *out = render(&snap, how, template, pango);

		fprintf(stderr, "mailwatch status: no session bus: %s\n",
			r == -ENOMEDIUM ? "neither DBUS_SESSION_BUS_ADDRESS "
					  "nor XDG_RUNTIME_DIR is set"
					: strerror(-r));
		/* No mailwatch can be reached: said as when none runs, so
		 * that a status bar shows it stopped. */
		fputs(out, stdout);
		free(out);
		return STATUS_NOT_RUNNING;
	}
	/* A daemon that does not answer (stopped with SIGSTOP, stuck) is
	 * told in seconds, not sd-bus's 25: a status bar waits for this
	 * (trial Q). */
	(void)sd_bus_set_method_call_timeout(bus, STATUS_CALL_TIMEOUT_USEC);
	/* Before the first read, so that no change falls in between. */
	if (follow) {
		r = sd_bus_match_signal(bus, NULL, NULL, SERVICE_PATH,
					"org.freedesktop.DBus.Properties",
					"PropertiesChanged", on_signal, &dirty);
		if (r >= 0)
			r = sd_bus_add_match(
			    bus, NULL,
			    "type='signal',sender='org.freedesktop.DBus',"
			    "member='NameOwnerChanged',arg0='" SERVICE_NAME
			    "'",
			    on_signal, &dirty);
		if (r < 0) {
			fprintf(stderr, "mailwatch status: %s\n",
				strerror(-r));
			sd_bus_unref(bus);
			return 1;
		}
	}
	for (;;) {
		if (dirty) {
			sd_bus_error err = SD_BUS_ERROR_NULL;
			char *out;

			dirty = false;
			r = fetch(bus, &snap, &err);
			if (r == -ETIMEDOUT) {
				if (!stuck)
					fprintf(stderr,
						"mailwatch status: mailwatch "
						"did not answer within %d s "
						"(stopped, or stuck?)\n",
						(int)(STATUS_CALL_TIMEOUT_USEC /
						      1000000));
				sd_bus_error_free(&err);
				if (!follow) {
					status = 1;
					break;
				}
				/* Asked again (each try waits as long)
				 * until it answers; what was printed
				 * stands meanwhile (trial S: a status
				 * bar's module ended). */
				stuck = dirty = true;
				continue;
			}
			stuck = false;
			if (r < 0 && r != -ESRCH) {
				fprintf(stderr, "mailwatch status: %s\n",
					err.message ? err.message
						    : strerror(-r));
				sd_bus_error_free(&err);
				status = 1;
				break;
			}
			sd_bus_error_free(&err);
			out = render(&snap, how, template, pango);
			if (!last || strcmp(out, last)) {
				/* The output for people is several lines:
				 * a blank one between two (trial AB). */
				if (last && how == O_TEXT)
					fputc('\n', stdout);
				fputs(out, stdout);
				fflush(stdout);
			}
			free(last);
			last = out;
			if (!follow) {
				status = snap.running ? 0
						      : STATUS_NOT_RUNNING;
				break;
			}
			if (ferror(stdout))
				break;
		}
		r = sd_bus_process(bus, NULL);
		if (r > 0)
			continue;
		if (r >= 0)
			r = sd_bus_wait(bus, UINT64_MAX);
		if (r < 0) {
			fprintf(stderr, "mailwatch status: the bus: %s\n",
				strerror(-r));
			status = 1;
			break;
		}
	}
	free(last);
	snapshot_clear(&snap);
	sd_bus_flush_close_unref(bus);
	return status;
}
