#!/usr/bin/env python3
"""Writes the *.imap server transcripts in this directory.

An authoring aid: literal byte counts ({n}) must be exact, so the transcripts
are built here and the files committed. The .expect files are not generated:
after changing a transcript, run CODEC_WRITE_EXPECT=1 build/asan/test_codec
and read the diff of the .expect files line by line before committing.
The content is written from what these servers are known to send; names,
addresses and IDs are made up.
"""
import os
OUT = os.path.dirname(os.path.abspath(__file__))

def L(s):
    if isinstance(s, str):
        s = s.encode()
    return b"{%d}\r\n" % len(s) + s

def build(parts, eol=b"\r\n"):
    out = b""
    for p in parts:
        if isinstance(p, str):
            p = p.encode()
        out += p + eol
    return out

def w(name, data):
    with open(os.path.join(OUT, name + ".imap"), "wb") as f:
        f.write(data)

def env(date, subj, frm, sender, reply, to, cc, bcc, irt, mid):
    def q(x):
        if x is None:
            return b"NIL"
        if isinstance(x, bytes):
            return x
        return b'"' + x.encode().replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'
    def al(lst):
        if lst is None:
            return b"NIL"
        return b"(" + b"".join(b"(" + b" ".join(q(f) for f in a) + b")" for a in lst) + b")"
    return (b"ENVELOPE (" + q(date) + b" " + q(subj) + b" " + al(frm) + b" " + al(sender) + b" " +
            al(reply) + b" " + al(to) + b" " + al(cc) + b" " + al(bcc) + b" " + q(irt) + b" " + q(mid) + b")")

# ---------------------------------------------------------------- Dovecot
anna = [("Anna Schmidt", None, "anna", "example.org")]
bs_mixed = (b'BODYSTRUCTURE ((("text" "plain" ("charset" "utf-8" "format" "flowed") NIL NIL "quoted-printable" 1234 40 NIL NIL NIL NIL)'
    b'("text" "html" ("charset" "utf-8") NIL NIL "quoted-printable" 5678 120 NIL NIL NIL NIL) "alternative" ("boundary" "=_b2") NIL NIL NIL)'
    b'("application" "pdf" ("name" "report.pdf") NIL NIL "base64" 245760 NIL ("attachment" ("filename" "report.pdf" "size" "179540")) NIL NIL)'
    b'("message" "rfc822" NIL NIL NIL "7bit" 3456 ("Fri, 17 Nov 2023 12:00:00 +0000" "old thread" (("Bob" NIL "bob" "example.com")) '
    b'(("Bob" NIL "bob" "example.com")) (("Bob" NIL "bob" "example.com")) ((NIL NIL "alice" "example.org")) NIL NIL NIL "<old@example.com>") '
    b'("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 200 5 NIL NIL NIL NIL) 80 NIL NIL NIL NIL) "mixed" ("boundary" "=_b1") NIL ("en") NIL)')
subj8 = "Über die Sitzung morgen – Tagesordnung".encode()
dovecot = build([
    "* OK [CAPABILITY IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE LITERAL+ STARTTLS AUTH=PLAIN] Dovecot (Debian) ready.",
    "a1 OK Begin TLS negotiation now.",
    "* CAPABILITY IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE LITERAL+ AUTH=PLAIN",
    "a2 OK Pre-login capabilities listed, post-login capabilities have more.",
    "a3 OK [CAPABILITY IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE SORT SORT=DISPLAY THREAD=REFERENCES THREAD=REFS "
    "THREAD=ORDEREDSUBJECT MULTIAPPEND URL-PARTIAL CATENATE UNSELECT CHILDREN NAMESPACE UIDPLUS LIST-EXTENDED I18NLEVEL=1 "
    "CONDSTORE QRESYNC ESEARCH ESORT SEARCHRES WITHIN CONTEXT=SEARCH LIST-STATUS BINARY MOVE SNIPPET=FUZZY PREVIEW=FUZZY "
    "PREVIEW STATUS=SIZE SAVEDATE LITERAL+ NOTIFY SPECIAL-USE] Logged in",
    '* ID ("name" "Dovecot")',
    "a4 OK ID completed (0.001 + 0.000 secs).",
    "* ENABLED CONDSTORE QRESYNC",
    "a5 OK Enabled.",
    '* LIST (\\HasChildren) "/" INBOX',
    '* LIST (\\HasNoChildren \\Drafts) "/" Drafts',
    '* LIST (\\HasNoChildren \\Sent) "/" Sent',
    '* LIST (\\HasNoChildren \\Trash) "/" Trash',
    '* LIST (\\HasNoChildren) "/" "INBOX/Lists/dev ml"',
    '* LIST (\\HasNoChildren) "/" INBOX/&AMk-t&AOk-',
    b'* LIST (\\HasNoChildren \\UnMarked) "/" ' + L(b'INBOX/"quoted" \\ name'),
    '* LIST (\\HasNoChildren \\Subscribed) "/" "Archive" ("CHILDINFO" ("SUBSCRIBED"))',
    "a6 OK List completed (0.001 + 0.000 secs).",
    "* STATUS INBOX (MESSAGES 3 UIDNEXT 4 UIDVALIDITY 1700000000 UNSEEN 1 HIGHESTMODSEQ 7)",
    "a7 OK Status completed (0.001 + 0.000 secs).",
    "* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Forwarded $Junk $NotJunk)",
    "* OK [PERMANENTFLAGS ()] Read-only mailbox.",
    "* 3 EXISTS",
    "* 0 RECENT",
    "* OK [UNSEEN 2] First unseen.",
    "* OK [UIDVALIDITY 1700000000] UIDs valid",
    "* OK [UIDNEXT 4] Predicted next UID",
    "* OK [HIGHESTMODSEQ 7] Highest",
    "* VANISHED (EARLIER) 1:2,5",
    "a8 OK [READ-ONLY] Examine completed (0.001 + 0.000 secs).",
    "+ idling",
    "* 4 EXISTS",
    "* 1 RECENT",
    "a9 OK Idle completed (0.002 + 2.001 + 2.000 secs).",
    '* ESEARCH (TAG "a10") UID MIN 4 MAX 4 COUNT 1 ALL 4',
    "a10 OK Search completed (0.001 + 0.000 secs).",
    b"* 4 FETCH (UID 4 RFC822.SIZE 2843 FLAGS (\\Recent) MODSEQ (8) INTERNALDATE \"20-Nov-2023 10:15:02 +0100\" " +
    env("Mon, 20 Nov 2023 10:15:00 +0100", L(subj8),
        [(L("Jürgen Weiß".encode()), None, "juergen", "example.de")],
        [(L("Jürgen Weiß".encode()), None, "juergen", "example.de")],
        [(None, None, "orga", "example.de")],
        [(None, None, "team", None), ("Anna Schmidt", None, "anna", "example.org"),
         (None, None, "bob", "example.com"), (None, None, None, None)],
        None, None, "<prev-1234@example.de>", "<20231120091500.5678@example.de>") +
    b" BODY[HEADER.FIELDS (LIST-ID)] " + L(b"\r\n") + b")",
    b"* 4 FETCH (UID 4 " + bs_mixed + b" PREVIEW " + L(b"Hallo zusammen, anbei die Tagesordnung f\xc3\xbcr morgen.") +
    b" SAVEDATE \"20-Nov-2023 10:15:02 +0100\" EMAILID (M6d1c6a8e2b9f0a1c) THREADID NIL)",
    "a11 OK Fetch completed (0.001 + 0.000 secs).",
    "* BYE Logging out",
    "a12 OK Logout completed (0.001 + 0.000 secs).",
])
w("dovecot", dovecot)

# ---------------------------------------------------------------- Gmail
body = (b"Delivered-To: me@gmail.com\r\nFrom: =?UTF-8?B?w4lsb8Ovc2U=?= <eloise@example.fr>\r\n"
        b"Subject: =?UTF-8?Q?R=C3=A9union?=\r\n\r\nBonjour \xe9\xe8 (latin-1, not UTF-8)\r\n")
gmail = build([
    "* OK Gimap ready for requests from 203.0.113.7 h12mb34567890abc",
    "* CAPABILITY IMAP4rev1 UNSELECT IDLE NAMESPACE QUOTA ID XLIST CHILDREN X-GM-EXT-1 XYZZY SASL-IR AUTH=XOAUTH2 "
    "AUTH=PLAIN AUTH=PLAIN-CLIENTTOKEN AUTH=OAUTHBEARER AUTH=XOAUTH",
    "a1 OK Thats all she wrote! h12mb34567890abc",
    "* CAPABILITY IMAP4rev1 UNSELECT IDLE NAMESPACE QUOTA ID XLIST CHILDREN X-GM-EXT-1 UIDPLUS COMPRESS=DEFLATE ENABLE "
    "MOVE CONDSTORE ESEARCH UTF8=ACCEPT LIST-EXTENDED LIST-STATUS LITERAL- SPECIAL-USE APPENDLIMIT=35651584",
    "a2 OK me@gmail.com authenticated (Success)",
    '* ID ("name" "GImap" "vendor" "Google, Inc." "support-url" "https://support.google.com/mail" "remote-host" "203.0.113.7")',
    "a3 OK Success",
    '* LIST (\\HasNoChildren) "/" "INBOX"',
    '* LIST (\\HasChildren \\Noselect) "/" "[Gmail]"',
    '* LIST (\\All \\HasNoChildren) "/" "[Gmail]/All Mail"',
    '* LIST (\\Drafts \\HasNoChildren) "/" "[Gmail]/Drafts"',
    '* LIST (\\HasNoChildren \\Important) "/" "[Gmail]/Important"',
    '* LIST (\\HasNoChildren \\Sent) "/" "[Gmail]/Sent Mail"',
    '* LIST (\\HasNoChildren \\Junk) "/" "[Gmail]/Spam"',
    '* LIST (\\Flagged \\HasNoChildren) "/" "[Gmail]/Starred"',
    '* LIST (\\HasNoChildren \\Trash) "/" "[Gmail]/Trash"',
    '* LIST (\\HasNoChildren) "/" "R&AOk-unions/2023"',
    "a4 OK Success",
    '* STATUS "INBOX" (MESSAGES 1543 UIDNEXT 98765 UIDVALIDITY 1)',
    "a5 OK Success",
    "* FLAGS (\\Answered \\Flagged \\Draft \\Deleted \\Seen $NotPhishing $Phishing)",
    "* OK [PERMANENTFLAGS ()] Flags permitted.",
    "* OK [UIDVALIDITY 1] UIDs valid.",
    "* 1543 EXISTS",
    "* 0 RECENT",
    "* OK [UIDNEXT 98765] Predicted next UID.",
    "* OK [HIGHESTMODSEQ 8523917]",
    "a6 OK [READ-ONLY] INBOX selected. (Success)",
    "+ idling",
    "* 1544 EXISTS",
    "a7 OK IDLE terminated (Success)",
    "* SEARCH 98765",
    "a8 OK SEARCH completed (Success)",
    b'* 1544 FETCH (X-GM-THRID 1782345678901234567 X-GM-MSGID 1782345678901234568 X-GM-LABELS ("\\\\Important" "\\\\Inbox" Work '
    b'"Tr\\"avel\\\\2023") UID 98765 MODSEQ (8524001) FLAGS () INTERNALDATE "21-Nov-2023 08:30:12 +0000" RFC822.SIZE 5123 ' +
    env("Tue, 21 Nov 2023 09:30:05 +0100", "=?UTF-8?Q?R=C3=A9union?=",
        [("=?UTF-8?B?w4lsb8Ovc2U=?=", None, "eloise", "example.fr")],
        [("=?UTF-8?B?w4lsb8Ovc2U=?=", None, "eloise", "example.fr")],
        [("=?UTF-8?B?w4lsb8Ovc2U=?=", None, "eloise", "example.fr")],
        [(None, None, "me", "gmail.com")], None, None, None,
        "<CAF=abc+def@mail.gmail.com>") +
    b" BODY[]<0> " + L(body) + b")",
    "* 1544 FETCH (X-GM-LABELS (\\Inbox \\Sent Important \"Muy Importante\") UID 98765)",
    "a9 OK Success",
    "* BYE LOGOUT Requested",
    "a10 OK 73 good day (Success)",
])
w("gmail", gmail)

# ---------------------------------------------------------------- Exchange / Office 365
exchange = build([
    "* OK The Microsoft Exchange IMAP4 service is ready. [TQBOADIAUABSADAANgBDAEEAMAAwADAAMwAuAG4AYQBtAHAAcgBkADAANgAuAHAAcgBvAGQALgBvAHUAdABsAG8AbwBrAC4AYwBvAG0A]",
    "* CAPABILITY IMAP4 IMAP4rev1 AUTH=PLAIN AUTH=XOAUTH2 SASL-IR UIDPLUS MOVE ID UNSELECT CHILDREN IDLE NAMESPACE LITERAL+",
    "a1 OK CAPABILITY completed.",
    "a2 NO AUTHENTICATE failed.",
    "+ ",
    "a3 OK AUTHENTICATE completed.",
    '* ID ("name" "Microsoft.Exchange.Imap4.Imap4Server" "version" "15.20")',
    "a4 OK ID completed.",
    '* LIST (\\HasNoChildren) "/" Archive',
    '* LIST (\\HasChildren) "/" Calendar',
    '* LIST (\\HasNoChildren) "/" "Calendar/Birthdays"',
    '* LIST (\\HasNoChildren) "/" "Calendar/United States holidays"',
    '* LIST (\\HasNoChildren) "/" "Conversation History"',
    '* LIST (\\Marked \\HasNoChildren) "/" INBOX',
    '* LIST (\\HasNoChildren \\Junk) "/" "Junk Email"',
    '* LIST (\\HasNoChildren \\Sent) "/" "Sent Items"',
    '* LIST (\\HasNoChildren \\Trash) "/" "Deleted Items"',
    "a5 OK LIST completed.",
    "* STATUS INBOX (MESSAGES 12 UIDNEXT 1203 UIDVALIDITY 14)",
    "a6 OK STATUS completed.",
    "* 12 EXISTS",
    "* 0 RECENT",
    "* FLAGS (\\Seen \\Answered \\Flagged \\Deleted \\Draft $MDNSent)",
    "* OK [PERMANENTFLAGS (\\Seen \\Answered \\Flagged \\Deleted \\Draft $MDNSent)] Permanent flags",
    "* OK [UNSEEN 3] Is the first unseen message",
    "* OK [UIDVALIDITY 14] UIDVALIDITY value",
    "* OK [UIDNEXT 1203] The next unique identifier value",
    "a7 OK [READ-ONLY] EXAMINE completed.",
    "+ IDLE accepted, awaiting DONE command.",
    "* 13 EXISTS",
    "a8 OK IDLE completed.",
    "* SEARCH 1203",
    "a9 OK SEARCH completed.",
    b"* 13 FETCH (UID 1203 " + env("Tue, 21 Nov 2023 09:00:00 +0000", "Quarterly report",
        [("Boss, The", None, "boss", "example.com")], None, None,
        [(None, None, "team", "example.com")], [], None, None,
        "<AM0PR01MB1234ABCD@AM0PR01MB1234.eurprd01.prod.exchangelabs.com>") +
    b" FLAGS () BODY[HEADER.FIELDS (DATE FROM SUBJECT MESSAGE-ID)] " +
    L(b"Date: Tue, 21 Nov 2023 09:00:00 +0000\r\nFrom: \"Boss, The\" <boss@example.com>\r\nSubject: Quarterly report\r\n"
      b"Message-ID: <AM0PR01MB1234ABCD@AM0PR01MB1234.eurprd01.prod.exchangelabs.com>\r\n\r\n") + b")",
    b"* 13 FETCH (UID 1203 " + env(None, None, None, None, None, None, None, None, None, None) + b" FLAGS (\\Seen))",
    "a10 OK FETCH completed.",
    "* BYE Microsoft Exchange Server IMAP4 server signing off.",
    "a11 OK LOGOUT completed.",
])
w("exchange", exchange)

# ---------------------------------------------------------------- Cyrus
def part(i):
    return (b'("text" "plain" ("charset" "us-ascii" "name" "part%d.txt") "<p%d@cyrus>" "part %d" "7bit" %d %d NIL ("inline" ("filename" "part%d.txt")) NIL NIL)'
            % (i, i, i, 100 + i * 37, 3 + i % 11, i))
big = b"(" + b"".join(part(i) for i in range(120)) + b' "mixed" ("boundary" "=_big") NIL NIL NIL)'
nested = b'("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 10 1 NIL NIL NIL NIL)'
for i in range(12):
    nested = b"(" + nested + b' "mixed" ("boundary" "=_n%d") NIL NIL NIL)' % i
cyrus = build([
    "* OK [CAPABILITY IMAP4rev1 LITERAL+ ID ENABLE STARTTLS AUTH=PLAIN AUTH=SCRAM-SHA-256 SASL-IR] imap.example.org Cyrus IMAP 3.4.5-Debian-3.4.5-3 server ready",
    "a1 OK [CAPABILITY IMAP4rev1 LITERAL+ ID ENABLE ACL RIGHTS=kxten QUOTA MAILBOX-REFERRALS NAMESPACE UIDPLUS NO_ATOMIC_RENAME "
    "UNSELECT CHILDREN MULTIAPPEND BINARY CATENATE CONDSTORE ESEARCH SORT SORT=MODSEQ SORT=DISPLAY SORT=UID THREAD=ORDEREDSUBJECT "
    "THREAD=REFERENCES THREAD=REFS ANNOTATEMORE ANNOTATE-EXPERIMENT-1 METADATA LIST-EXTENDED LIST-STATUS LIST-MYRIGHTS "
    "LIST-METADATA WITHIN QRESYNC SCAN XLIST XMOVE MOVE SPECIAL-USE CREATE-SPECIAL-USE DIGEST=SHA1 X-REPLICATION "
    "STATUS=SIZE OBJECTID SAVEDATE X-CREATEDMODSEQ PREVIEW URLAUTH URLAUTH=BINARY LOGINDISABLED COMPRESS=DEFLATE IDLE] User logged in SESSIONID=<imap.example.org-1234-1700000000-1-123456789>",
    '* ID ("name" "Cyrus IMAPD" "version" "3.4.5-Debian-3.4.5-3" "vendor" "Project Cyrus" "support-url" "https://www.cyrusimap.org" "os" "Linux" "os-version" "6.1.0-13-amd64" "environment" "Built w/Cyrus SASL 2.1.28; Running w/Cyrus SASL 2.1.28")',
    "a2 OK Completed",
    '* NAMESPACE (("INBOX." ".")) (("user." ".")) (("" "."))',
    "a3 OK Completed",
    '* LIST (\\HasChildren) "." INBOX',
    '* LIST (\\HasNoChildren \\Sent) "." INBOX.Sent',
    '* LIST (\\HasNoChildren) "." "INBOX.Mailing Lists.cyrus-devel"',
    '* LIST (\\Noselect \\HasChildren) "." user',
    '* LSUB () "." INBOX.Sent',
    "a4 OK Completed (0.000 secs 5 calls)",
    '* QUOTA INBOX (STORAGE 1234 1048576)',
    "a5 OK Completed",
    "* 25 EXISTS",
    "* 0 RECENT",
    "* FLAGS (\\Answered \\Flagged \\Draft \\Deleted \\Seen $Label1 $Forwarded)",
    "* OK [PERMANENTFLAGS ()] Ok",
    "* OK [UIDVALIDITY 1699999999] Ok",
    "* OK [UIDNEXT 4302] Ok",
    "* OK [HIGHESTMODSEQ 120] Ok",
    "* OK [URLMECH INTERNAL] Ok",
    "* OK [MAILBOXID (7a6f2b1c-2c1d-4a7e-9f43-5d3c1e2b8a90)] Ok",
    "a6 OK [READ-ONLY] Completed",
    '* ESEARCH (TAG "a7") UID MIN 3 MAX 4301 COUNT 25 ALL 3,17:20,4290:4301',
    "a7 OK Completed (25 msgs in 0.000 secs)",
    "* 10 FETCH (FLAGS (\\Seen $Label1) MODSEQ (121))",
    "* 2 EXPUNGE",
    b"* 24 FETCH (UID 4301 RFC822.SIZE 912345 BODYSTRUCTURE " + big + b")",
    b"* 24 FETCH (UID 4301 BODYSTRUCTURE " + nested + b")",
    b"* 24 FETCH (UID 4301 BINARY[1] ~" + L(b"\x00\x01\x02binary\xff\xfe\r\n\x00") + b" BINARY.SIZE[1] 13)",
    "a8 OK Completed (0.001 sec)",
    "a9 OK [COPYUID 1699999999 304,319:320 3956:3958] Completed",
    "a10 OK [APPENDUID 1699999999 4302] Completed",
    "a11 NO [TRYCREATE] Mailbox does not exist",
    "* OK [CLOSED] Ok",
    "a12 OK Completed",
    "* BYE LOGOUT received",
    "a13 OK Completed",
])
w("cyrus", cyrus)

# ---------------------------------------------------------------- Yahoo and iCloud
yahoo = build([
    "* OK [CAPABILITY IMAP4rev1 ID MOVE NAMESPACE XYMHIGHESTMODSEQ UIDPLUS LITERAL+ CHILDREN X-MSG-EXT UNSELECT OBJECTID] IMAP4rev1 Hello",
    "a1 OK [CAPABILITY IMAP4rev1 ID MOVE NAMESPACE XYMHIGHESTMODSEQ UIDPLUS LITERAL+ CHILDREN X-MSG-EXT UNSELECT OBJECTID] LOGIN completed",
    '* ID ("name" "Yahoo IMAP Server" "version" "1.0")',
    "a2 OK ID completed",
    "* 1234 EXISTS",
    "* 0 RECENT",
    "* OK [UIDVALIDITY 1600000000] UIDs valid",
    "* OK [UIDNEXT 56789] Predicted next UID",
    "* FLAGS (\\Answered \\Deleted \\Draft \\Flagged \\Seen $Forwarded $Junk $NotJunk)",
    "* OK [PERMANENTFLAGS (\\Answered \\Deleted \\Draft \\Flagged \\Seen $Forwarded $Junk $NotJunk \\*)] Permanent flags",
    "* OK [HIGHESTMODSEQ 4830000000001]",
    "* OK [MAILBOXID (2)] Ok",
    "a3 OK [READ-ONLY] EXAMINE completed; now in selected state",
    "+ idling",
    "* 1235 EXISTS",
    "a4 OK IDLE completed",
    b"* 1235 FETCH (UID 56789 FLAGS () " + env("Wed, 22 Nov 2023 14:02:11 +0000 (UTC)", "Your order has shipped",
        [("Shop", None, "no-reply", "shop.example")], [("Shop", None, "no-reply", "shop.example")],
        [("Shop", None, "no-reply", "shop.example")], [(None, None, "me", "yahoo.com")], None, None, None,
        "<1700661731.123456@shop.example>") + b")",
    "a5 OK UID FETCH completed",
    "* OK [CAPABILITY XAPPLEPUSHSERVICE IMAP4 IMAP4rev1 SASL-IR AUTH=ATOKEN AUTH=PLAIN] iCloud IMAP4 service is ready.",
    "b1 OK me@icloud.com authenticated (Success)",
    '* LIST (\\HasNoChildren) "/" "INBOX"',
    '* LIST (\\HasNoChildren \\Sent) "/" "Sent Messages"',
    '* LIST (\\HasNoChildren \\Junk) "/" "Junk"',
    "b2 OK LIST completed (took 3 ms)",
    "* 45 EXISTS",
    "* 0 RECENT",
    "* OK [UIDVALIDITY 1] UIDs valid",
    "* OK [UIDNEXT 1834] Predicted next UID",
    "b3 OK [READ-ONLY] EXAMINE completed (took 4 ms)",
    "* BYE Logging out",
    "b4 OK LOGOUT completed",
])
w("yahoo_icloud", yahoo)

# ---------------------------------------------------------------- quirks
quirks = build([
    "* PREAUTH [CAPABILITY IMAP4rev1 IDLE] Ready, logged in as me",
    "* ok lower-case status",
    "*   OK   [ALERT]   extra spaces",
    "* OK",
    "* OK [READ-WRITE]",
    "* NO [ALERT] System shutdown in 10 minutes",
    "* OK [NOMODSEQ] Sorry, this mailbox format doesn't support modsequences",
    "* OK [METADATA LONGENTRIES 2000] Some entries too long",
    '* NO [BADCHARSET (UTF-8 "X]Y")] Unknown charset',
    "a1 NO [UNAVAILABLE] Temporary failure, try again",
    "a2 no [authenticationfailed] Authentication failed.",
    "a3 OK",
    "a4 BAD Error in IMAP command UID FETCH: Invalid messageset",
    "+",
    "+ Ready for additional command text",
    "+ YGgGCSqGSIb3EgECAgIBAAD/////6jcyG4GE3KkTzBeBiQHeceCjvxcE",
    "",
    "* 3 FETCH (UID 5 FLAGS (\\Seen))",
    "* 3 fetch (flags (\\Seen) uid 5)",
    "* 4 FETCH ( UID 6  FLAGS ( \\Seen  \\Answered ) )",
    "* 5 FETCH (FLAGS(\\Deleted)UID 7)",
    "* SEARCH",
    "* SEARCH 1 2 3 ",
    "* search 2 84 882 (MODSEQ 917162500)",
    "* ESEARCH COUNT 0",
    '* ESEARCH (TAG "x") UID',
    "* ESEARCH (tag a9) uid count 3 all 7:5,9 partial (1:10 7,8,9)",
    '* LIST (\\Noselect) NIL ""',
    '* LIST (\\Noselect) "/" ""',
    '* LIST () "\\\\" Archive\\2020',
    '* LSUB () "." #news.comp.mail.misc',
    '* list (\\hasnochildren) "/" inbox',
    '* NAMESPACE (("" "/")) NIL NIL',
    '* QUOTA "" (STORAGE 10 512)',
    '* QUOTAROOT INBOX ""',
    b'* METADATA "" (/shared/comment ' + L(b"Shared\r\ncomment") + b")",
    "* 5 XYZZY foo (bar)",
    "* ENABLED",
    "* CAPABILITY IMAP4rev1 IDLE ",
    "* VANISHED 405,407,410:415",
    "* 4294967295 EXISTS",
    "* 1 FETCH (MODSEQ (18446744073709551615))",
    b"* 7 FETCH (BODY[] " + L(b"") + b")",
    b"* 8 FETCH (RFC822.HEADER " + L(b"Subject: hi\r\n\r\n") + b" RFC822.SIZE 44 RFC822.TEXT NIL RFC822 \"x\")",
    "* 9 FETCH (BODY[1.2.MIME] NIL BODY[2]<1024> \"tail\")",
    b"* 10 FETCH (BODY[TEXT]<0> {5+}\r\nhello)",
    b'* 11 FETCH (UID 99 PREVIEW (FUZZY "Hi there") SAVEDATE NIL EMAILID (M123abc) THREADID (T456) '
    b'X-GUID 8f2a6c0b5e3d X-UNKNOWN ((a b) "c" ' + L(b"d)") + b') BINARY.SIZE[1] 42 INTERNALDATE " 2-Jan-2024 01:02:03 +0000")',
    b"* OK caf\xe9 is latin-1 and \xff\xfe is nothing",
    b'* 12 FETCH (ENVELOPE (NIL "\xe4\xb8\xad\xe6\x96\x87 \\"quoted\\" \\\\ back" ((NIL NIL "undisclosed-recipients" NIL)(NIL NIL NIL NIL)) NIL NIL () NIL NIL NIL NIL))',
    "* OK [UIDNEXT 1] text]with]brackets",
    "* BYE Autologout; idle for too long",
])
# and a few lines ending in bare LF
quirks += b"* 13 EXISTS\n* 14 FETCH (UID 1 BODY[] " + L(b"a\nb") .replace(b"\r\n", b"\n") + b")\n\n\na5 OK bare LF\n"
w("quirks", quirks)
