"""SMTP receiving (RFC 5321, 1870, 2920, 3463, 6152) with smtplib and raw sockets."""

import os
import poplib
import smtplib
from email.mime.application import MIMEApplication
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText

import pytest

from tern_harness import (HOSTNAME, TIMEOUT, Raw, check_maildir_name,
                          make_message, smtp_open, split_added, to_lf)

ALICE = "alice@example.test"
BOB = "bob@example.test"
DEMO = "demo@example.test"
SENDER = "sender@remote.test"


def send(tern, rcpts, msg, sender=SENDER, **kw):
    with smtplib.SMTP("127.0.0.1", tern.smtp_port, timeout=TIMEOUT) as s:
        refused = s.sendmail(sender, rcpts, msg, **kw)
        assert refused == {}
        s.quit()


def check_delivered(tern, rcpt, msg, sender=SENDER):
    """rcpt has exactly one message: the added fields, then msg byte-exact (LF)."""
    files = tern.message_files(rcpt)
    assert len(files) == 1, f"{rcpt}: {len(files)} messages"
    data = files[0].read_bytes()
    check_maildir_name(files[0], data)
    added, rest = split_added(data)
    assert added["return-path"] == f"<{sender}>"
    assert added["delivered-to"].strip("<>").lower() == rcpt.lower()
    # RFC 5321 §4.4: the Received field names the receiving host.
    assert f"by {HOSTNAME}" in added["received"]
    assert rest == to_lf(msg)
    return data


def pop_retr(tern, user, pw, n=1):
    p = poplib.POP3("127.0.0.1", tern.pop3_port, timeout=TIMEOUT)
    try:
        p.user(user)
        p.pass_(pw)
        _, lines, octets = p.retr(n)
        p.quit()
    finally:
        p.close()
    return b"\r\n".join(lines) + b"\r\n", octets


def check_pop3(tern, user, pw, msg, data):
    """RETR gives the stored message in CRLF form; the tail is msg byte-exact."""
    got, _ = pop_retr(tern, user, pw)
    assert got == data.replace(b"\n", b"\r\n")
    _, rest = split_added(got, b"\r\n")
    assert rest == msg


# --- delivery ---------------------------------------------------------------

def test_one_recipient(tern):
    msg = make_message("one rcpt", "Hello Alice.\nSecond line.\n")
    send(tern, [ALICE], msg)
    data = check_delivered(tern, ALICE, msg)
    check_pop3(tern, ALICE, "alice-pw", msg, data)
    assert tern.message_files(BOB) == []


def test_several_recipients(tern):
    msg = make_message("three rcpts", "To all of you.\n")
    send(tern, [ALICE, BOB, DEMO], msg)
    for rcpt in (ALICE, BOB, DEMO):
        check_delivered(tern, rcpt, msg)


def test_recipient_case_insensitive_domain(tern):
    msg = make_message("case", "Domain in upper case.\n")
    send(tern, ["alice@EXAMPLE.TEST"], msg)
    assert len(tern.message_files(ALICE)) == 1


def test_alias_two_targets(tern):
    msg = make_message("to the team", "Team mail.\n", to="team@example.test")
    send(tern, ["team@example.test"], msg)
    for rcpt in (ALICE, BOB):
        files = tern.message_files(rcpt)
        assert len(files) == 1
        _, rest = split_added(files[0].read_bytes())
        assert rest == to_lf(msg)
    assert tern.message_files(DEMO) == []


def test_postmaster_alias_and_bare_postmaster(tern):
    # RFC 5321 §4.5.1: "Postmaster" without a domain must be accepted.
    with smtp_open(tern) as r:
        assert r.cmd(f"MAIL FROM:<{SENDER}>")[0] == 250
        assert r.cmd("RCPT TO:<postmaster@example.test>")[0] == 250
        assert r.cmd("RCPT TO:<Postmaster>")[0] == 250
        assert r.cmd("DATA")[0] == 354
        r.send(b"Subject: pm\r\n\r\nfor the postmaster\r\n.\r\n")
        assert r.smtp_reply()[0] == 250
        assert r.cmd("QUIT")[0] == 221
    # Both resolve to alice; one copy per final recipient is enough.
    assert len(tern.message_files(ALICE)) >= 1


def test_8bitmime_utf8(tern):
    body = "Grüße aus Köln — ünïcödé ✓ 日本語\nZweite Zeile: äöü ß\n"
    msg = make_message("utf8", body.encode("utf-8"),
                       extra=b"MIME-Version: 1.0\r\n"
                             b"Content-Type: text/plain; charset=utf-8\r\n"
                             b"Content-Transfer-Encoding: 8bit\r\n")
    send(tern, [ALICE], msg, mail_options=["BODY=8BITMIME"])
    data = check_delivered(tern, ALICE, msg)
    assert "Grüße aus Köln".encode() in data
    check_pop3(tern, ALICE, "alice-pw", msg, data)


def test_10mib_attachment(tern):
    m = MIMEMultipart()
    m["From"] = SENDER
    m["To"] = ALICE
    m["Subject"] = "big attachment"
    m.attach(MIMEText("See the attachment.\n"))
    payload = os.urandom(10 * 1024 * 1024)
    m.attach(MIMEApplication(payload, Name="blob.bin"))
    msg = m.as_bytes().replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    if not msg.endswith(b"\r\n"):
        msg += b"\r\n"
    send(tern, [ALICE], msg)
    data = check_delivered(tern, ALICE, msg)
    got, octets = pop_retr(tern, ALICE, "alice-pw")
    assert got == data.replace(b"\n", b"\r\n")
    _, rest = split_added(got, b"\r\n")
    assert rest == msg
    # And the attachment decodes to what was sent.
    import email
    parsed = email.message_from_bytes(rest)
    parts = [p for p in parsed.walk() if p.get_filename() == "blob.bin"]
    assert parts and parts[0].get_payload(decode=True) == payload


DOT_BODY = (b"First line\r\n"
            b".hidden starts with a dot\r\n"
            b"..\r\n"
            b".\r\n"
            b"...three dots\r\n"
            b". dot space\r\n"
            b"middle\r\n"
            b".\r\n"
            b"last line\r\n")


def test_dot_lines(tern):
    msg = make_message("dots", DOT_BODY)
    send(tern, [ALICE], msg)
    data = check_delivered(tern, ALICE, msg)
    assert b"\n.hidden starts with a dot\n..\n.\n...three dots\n" in data
    check_pop3(tern, ALICE, "alice-pw", msg, data)


def test_dot_lines_raw_stuffing(tern):
    """The client's stuffing is undone exactly once."""
    with smtp_open(tern) as r:
        assert r.cmd(f"MAIL FROM:<{SENDER}>")[0] == 250
        assert r.cmd(f"RCPT TO:<{ALICE}>")[0] == 250
        assert r.cmd("DATA")[0] == 354
        r.send(b"Subject: raw dots\r\n\r\n..hidden\r\n...\r\n..\r\nend\r\n.\r\n")
        assert r.smtp_reply()[0] == 250
    _, rest = split_added(tern.messages(ALICE)[0])
    assert rest == b"Subject: raw dots\n\n.hidden\n..\n.\nend\n"


def test_no_final_crlf_in_body_is_completed(tern):
    # smtplib adds the CRLF before the end marker itself; the stored message
    # then ends with a line end.
    msg = b"Subject: no eol\r\n\r\nno newline at end"
    send(tern, [ALICE], msg)
    _, rest = split_added(tern.messages(ALICE)[0])
    assert rest == b"Subject: no eol\n\nno newline at end\n"


# --- EHLO, greeting, simple commands ------------------------------------------

def test_greeting_and_ehlo(tern):
    with Raw(tern.smtp_port) as r:
        code, lines = r.smtp_reply()
        assert code == 220
        assert lines[0].startswith(HOSTNAME)
        code, lines = r.cmd("EHLO client.test")
        assert code == 250
        assert lines[0].startswith(HOSTNAME)
        kw = [line.upper() for line in lines[1:]]
        assert "PIPELINING" in kw
        assert "8BITMIME" in kw
        assert "ENHANCEDSTATUSCODES" in kw
        assert f"SIZE {20 * 1024 * 1024}" in kw
        assert r.cmd("NOOP")[0] == 250
        assert r.cmd("RSET")[0] == 250
        assert r.cmd("QUIT")[0] == 221
        assert r.eof()


def test_helo(tern):
    with Raw(tern.smtp_port) as r:
        assert r.smtp_reply()[0] == 220
        assert r.cmd("HELO client.test")[0] == 250
        assert r.cmd(f"MAIL FROM:<{SENDER}>")[0] == 250
        assert r.cmd(f"RCPT TO:<{ALICE}>")[0] == 250
        assert r.cmd("DATA")[0] == 354
        r.send(b"Subject: helo\r\n\r\nvia HELO\r\n.\r\n")
        assert r.smtp_reply()[0] == 250
    assert len(tern.message_files(ALICE)) == 1


def test_vrfy(tern):
    with smtp_open(tern) as r:
        code, _ = r.cmd(f"VRFY {ALICE}")
        assert code == 252


def test_bad_sequence(tern):
    with smtp_open(tern) as r:
        assert r.cmd("DATA")[0] == 503
        assert r.cmd(f"RCPT TO:<{ALICE}>")[0] == 503
        assert r.cmd(f"MAIL FROM:<{SENDER}>")[0] == 250
        assert r.cmd(f"MAIL FROM:<{SENDER}>")[0] == 503
        # RFC 5321 §3.3: no recipient yet gives 503 or 554.
        assert r.cmd("DATA")[0] in (503, 554)
        assert r.cmd("NOOP")[0] == 250


def test_null_sender(tern):
    msg = make_message("bounce", "A bounce has the null reverse-path.\n")
    send(tern, [ALICE], msg, sender="")
    added, rest = split_added(tern.messages(ALICE)[0])
    assert added["return-path"] == "<>"
    assert rest == to_lf(msg)


# --- refusals -----------------------------------------------------------------

def test_unknown_local_user(tern):
    with smtp_open(tern) as r:
        assert r.cmd(f"MAIL FROM:<{SENDER}>")[0] == 250
        code, lines = r.cmd("RCPT TO:<nobody@example.test>")
        assert code == 550
        assert lines[0].startswith("5.1.1")
        # The transaction goes on with a good recipient.
        assert r.cmd(f"RCPT TO:<{ALICE}>")[0] == 250
        assert r.cmd("DATA")[0] == 354
        r.send(b"Subject: after 550\r\n\r\nok\r\n.\r\n")
        assert r.smtp_reply()[0] == 250
    assert len(tern.message_files(ALICE)) == 1


def test_smtplib_refuses_unknown(tern):
    with smtplib.SMTP("127.0.0.1", tern.smtp_port, timeout=TIMEOUT) as s:
        with pytest.raises(smtplib.SMTPRecipientsRefused) as e:
            s.sendmail(SENDER, ["nobody@example.test"], b"Subject: x\r\n\r\nx\r\n")
        code, text = e.value.recipients["nobody@example.test"]
        assert code == 550 and text.startswith(b"5.1.1")


def test_relay_denied(tern):
    with smtp_open(tern) as r:
        assert r.cmd(f"MAIL FROM:<{SENDER}>")[0] == 250
        code, lines = r.cmd("RCPT TO:<someone@elsewhere.test>")
        assert code == 554
        assert lines[0].startswith("5.7.1")
    assert tern.queue_files() == []


def test_relay_denied_no_data(tern):
    with smtp_open(tern) as r:
        assert r.cmd(f"MAIL FROM:<{SENDER}>")[0] == 250
        assert r.cmd("RCPT TO:<someone@elsewhere.test>")[0] == 554
        # RFC 5321 §3.3: DATA without an accepted recipient is refused.
        code, _ = r.cmd("DATA")
        assert code in (503, 554)
        assert r.cmd("NOOP")[0] == 250


def test_relay_trusted_goes_to_queue(tern_trusted):
    msg = make_message("relay", "For a foreign domain.\n", to="x@elsewhere.test")
    send(tern_trusted, ["x@elsewhere.test"], msg)
    files = tern_trusted.queue_files()
    assert len(files) == 1
    content = files[0].read_bytes()
    assert b"For a foreign domain." in content
    assert b"x@elsewhere.test" in content


def test_size_at_mail(tern_factory):
    tern = tern_factory(message_size_limit="64k")
    with smtp_open(tern) as r:
        code, lines = r.cmd(f"MAIL FROM:<{SENDER}> SIZE={64 * 1024 + 1}")
        assert code == 552
        # The session goes on: a message within the limit is taken.
        assert r.cmd(f"MAIL FROM:<{SENDER}> SIZE=100")[0] == 250
        assert r.cmd(f"RCPT TO:<{ALICE}>")[0] == 250
        assert r.cmd("DATA")[0] == 354
        r.send(b"Subject: small\r\n\r\nsmall\r\n.\r\n")
        assert r.smtp_reply()[0] == 250
        assert r.cmd("QUIT")[0] == 221
    assert len(tern.message_files(ALICE)) == 1


def test_size_at_end_of_data(tern_factory):
    tern = tern_factory(message_size_limit="64k")
    big = b"Subject: big\r\n\r\n" + (b"x" * 998 + b"\r\n") * 80
    with smtp_open(tern) as r:
        assert r.cmd(f"MAIL FROM:<{SENDER}>")[0] == 250
        assert r.cmd(f"RCPT TO:<{ALICE}>")[0] == 250
        assert r.cmd("DATA")[0] == 354
        r.send(big + b".\r\n")
        code, _ = r.smtp_reply()
        assert code == 552
        # Next message in the same session works.
        assert r.cmd(f"MAIL FROM:<{SENDER}>")[0] == 250
        assert r.cmd(f"RCPT TO:<{ALICE}>")[0] == 250
        assert r.cmd("DATA")[0] == 354
        r.send(b"Subject: small\r\n\r\nsmall one\r\n.\r\n")
        assert r.smtp_reply()[0] == 250
        assert r.cmd("QUIT")[0] == 221
    msgs = tern.messages(ALICE)
    assert len(msgs) == 1
    assert split_added(msgs[0])[1] == b"Subject: small\n\nsmall one\n"


def test_smtplib_size_refused(tern_factory):
    tern = tern_factory(message_size_limit="64k")
    with smtplib.SMTP("127.0.0.1", tern.smtp_port, timeout=TIMEOUT) as s:
        s.ehlo()
        assert s.does_esmtp and int(s.esmtp_features["size"]) == 64 * 1024
        with pytest.raises(smtplib.SMTPSenderRefused) as e:
            s.sendmail(SENDER, [ALICE], b"Subject: x\r\n\r\n" + b"y" * 70000 + b"\r\n")
        assert e.value.smtp_code == 552
    assert tern.message_files(ALICE) == []


def test_overlong_command_line(tern):
    with smtp_open(tern) as r:
        code, lines = r.cmd("NOOP " + "a" * 5000)
        assert code == 500
        assert lines[0].startswith("5.5.2")
        assert r.cmd("NOOP")[0] == 250
        assert r.cmd(f"MAIL FROM:<{SENDER}>")[0] == 250
        code, _ = r.cmd(f"RCPT TO:<{'b' * 4000}@example.test>")
        assert code == 500
        assert r.cmd(f"RCPT TO:<{ALICE}>")[0] == 250


def test_nul_in_command_line(tern):
    """A NUL would cut the line short of what was sent: the command is
    refused whole, not acted on up to the NUL."""
    with smtp_open(tern) as r:
        code, lines = r.cmd(f"MAIL FROM:<{SENDER}>\x00 SIZE=999999999999".encode())
        assert (code, lines) == (500, ["5.5.2 Error: NUL in command"])
        assert r.cmd(f"MAIL FROM:<{SENDER}>")[0] == 250
        code, _ = r.cmd(f"RCPT TO:<{ALICE}>\x00<evil@remote.test>".encode())
        assert code == 500
        assert r.cmd("DATA")[0] == 503     # no recipient was taken
        assert r.cmd("NOOP")[0] == 250


def test_nul_in_data(tern):
    with smtp_open(tern) as r:
        assert r.cmd(f"MAIL FROM:<{SENDER}>")[0] == 250
        assert r.cmd(f"RCPT TO:<{ALICE}>")[0] == 250
        assert r.cmd("DATA")[0] == 354
        r.send(b"Subject: nul\r\n\r\nbad \x00 byte\r\n.\r\n")
        code, lines = r.smtp_reply()
        assert code == 554
        assert lines[0].startswith("5.6.0")
        assert r.cmd("NOOP")[0] == 250
    assert tern.message_files(ALICE) == []


def test_bad_commands_in_a_row(tern):
    # bad_command_limit = 5 in the harness config.
    with smtp_open(tern) as r:
        for _ in range(4):
            assert r.cmd("FROB")[0] == 500
        assert r.cmd("NOOP")[0] == 250     # the count restarts
        for _ in range(4):
            assert r.cmd("FROB")[0] == 500
        replies = []
        for _ in range(2):
            code, _ = r.cmd("FROB")
            replies.append(code)
            if code == 421:
                break
        assert replies[-1] == 421, replies
        assert r.eof()


def test_too_many_recipients(tern_factory):
    tern = tern_factory(recipient_limit="3")
    extra = [f"u{i}@example.test" for i in range(4)]
    for a in extra:
        tern.user_add(a, "pw-" + a)
    with smtp_open(tern) as r:
        assert r.cmd(f"MAIL FROM:<{SENDER}>")[0] == 250
        for a in extra[:3]:
            assert r.cmd(f"RCPT TO:<{a}>")[0] == 250
        code, lines = r.cmd(f"RCPT TO:<{extra[3]}>")
        assert code == 452
        assert lines[0].startswith("4.5.3")
        assert r.cmd("DATA")[0] == 354
        r.send(b"Subject: limit\r\n\r\nthree of four\r\n.\r\n")
        assert r.smtp_reply()[0] == 250
    for a in extra[:3]:
        assert len(tern.message_files(a)) == 1
    assert tern.message_files(extra[3]) == []


# --- pipelining and smuggling ---------------------------------------------------

def test_pipelining(tern):
    with smtp_open(tern) as r:
        r.send(f"MAIL FROM:<{SENDER}>\r\nRCPT TO:<{ALICE}>\r\n"
               f"RCPT TO:<nobody@example.test>\r\nRCPT TO:<{BOB}>\r\nDATA\r\n")
        codes = [r.smtp_reply()[0] for _ in range(5)]
        assert codes == [250, 250, 550, 250, 354]
        # Message, end marker and the next transaction in one packet.
        r.send(b"Subject: piped\r\n\r\npiped body\r\n.\r\n"
               + f"MAIL FROM:<{SENDER}>\r\nRCPT TO:<{DEMO}>\r\nDATA\r\n".encode())
        codes = [r.smtp_reply()[0] for _ in range(4)]
        assert codes == [250, 250, 250, 354]
        r.send(b"Subject: second\r\n\r\nsecond body\r\n.\r\nQUIT\r\n")
        assert r.smtp_reply()[0] == 250
        assert r.smtp_reply()[0] == 221
    for a in (ALICE, BOB):
        msgs = tern.messages(a)
        assert len(msgs) == 1
        assert split_added(msgs[0])[1] == b"Subject: piped\n\npiped body\n"
    msgs = tern.messages(DEMO)
    assert len(msgs) == 1
    assert split_added(msgs[0])[1] == b"Subject: second\n\nsecond body\n"


@pytest.mark.parametrize("sep", [b"\n.\r\n", b"\r.\r\n", b"\r\n.\n", b"\r\n.\r"])
def test_smuggling(tern, sep):
    """Only CRLF.CRLF ends the data: the rest stays inside the first message."""
    smuggled = (b"MAIL FROM:<x@y.test>\r\nRCPT TO:<" + BOB.encode() + b">\r\n"
                b"DATA\r\nSubject: smuggled\r\n\r\nsmuggled body\r\n")
    with smtp_open(tern) as r:
        assert r.cmd(f"MAIL FROM:<{SENDER}>")[0] == 250
        assert r.cmd(f"RCPT TO:<{ALICE}>")[0] == 250
        assert r.cmd("DATA")[0] == 354
        r.send(b"Subject: first\r\n\r\nhello" + sep + smuggled + b".\r\n")
        code, _ = r.smtp_reply()
        assert code == 250
        # The next reply must be to our QUIT, not to smuggled commands.
        code, _ = r.cmd("QUIT")
        assert code == 221
    msgs = tern.messages(ALICE)
    assert len(msgs) == 1
    assert b"MAIL FROM:<x@y.test>" in msgs[0]
    assert b"smuggled body" in msgs[0]
    assert tern.message_files(BOB) == []


def test_session_after_many_messages(tern):
    """One session, many transactions, all delivered once."""
    with smtplib.SMTP("127.0.0.1", tern.smtp_port, timeout=TIMEOUT) as s:
        for i in range(20):
            s.sendmail(SENDER, [BOB], make_message(f"n{i}", f"body {i}\n", to=BOB))
        s.quit()
    msgs = tern.messages(BOB)
    assert len(msgs) == 20
    bodies = sorted(split_added(m)[1].split(b"\n\n", 1)[1] for m in msgs)
    assert bodies == sorted(f"body {i}\n".encode() for i in range(20))


def test_pop3_sees_smtp_message_immediately(tern):
    msg = make_message("fresh", "just delivered\n", to=DEMO)
    send(tern, [DEMO], msg)
    p = poplib.POP3("127.0.0.1", tern.pop3_port, timeout=TIMEOUT)
    p.user(DEMO)
    p.pass_("pw")
    assert p.stat()[0] == 1
    p.quit()
