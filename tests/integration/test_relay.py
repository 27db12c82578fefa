"""The queue and relay (issue 5): two ternd on loopback serving a.test and
b.test, dnsmasq answering their MX records. Mail from A to B arrives; B
down means deferred and retried; B's 550 and a null MX bounce to the
sender as RFC 3464 reports; a SIGKILLed A delivers its queue after restart;
a looping message bounces with 5.4.6; the transport map and a relayhost
with TLS and AUTH route mail without MX."""

import email
import email.policy
import os
import signal
import smtplib
import subprocess
import time

import pytest

import tern_harness
from tern_harness import TIMEOUT, free_ports, make_message

A_USERS = {"alice@a.test": "alice-pw", "postmaster-box@a.test": "pm-pw"}
B_USERS = {"bob@b.test": "bob-pw", "carol@b.test": "carol-pw"}
A_ALIASES = "postmaster: postmaster-box@a.test\nabuse: postmaster-box@a.test\n"
B_ALIASES = "postmaster: bob@b.test\nabuse: bob@b.test\n"


@pytest.fixture
def dns():
    """A private dnsmasq on a free loopback port: "127.0.0.1:PORT"."""
    port, = free_ports(1)
    args = ["/usr/sbin/dnsmasq", "--conf-file=/dev/null", "--keep-in-foreground",
            "--no-resolv", "--no-hosts", "--bind-interfaces",
            "--listen-address=127.0.0.1", "--pid-file=", f"--port={port}",
            "--user=root", "--local=/test/",
            "--mx-host=b.test,mx.b.test,10",
            "--host-record=mx.b.test,127.0.0.1",
            "--mx-host=a.test,mx.a.test,10",
            "--host-record=mx.a.test,127.0.0.1",
            # RFC 7505 null MX: preference 0, target "."
            "--dns-rr=nullmx.test,15,000000"]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    time.sleep(0.3)
    assert proc.poll() is None, proc.stderr.read()
    yield f"127.0.0.1:{port}"
    proc.terminate()
    proc.wait(timeout=TIMEOUT)


def make_pair(tern_factory, dns, start_b=True, **a_settings):
    b = tern_factory(start=start_b, users=B_USERS, domains="b.test",
                     hostname="mx.b.test", dns_servers=dns, queue_hold="no")
    b.aliases_file.write_text(B_ALIASES)
    settings = dict(domains="a.test", hostname="mx.a.test", dns_servers=dns,
                    relay_port=str(b.smtp_port), trusted_networks="127.0.0.0/8",
                    queue_retry_min="1", queue_retry_max="2", queue_hold="no")
    settings.update(a_settings)
    a = tern_factory(start=False, users=A_USERS, **settings)
    a.aliases_file.write_text(A_ALIASES)
    a.start()
    return a, b


def send(tern, sender, rcpts, msg):
    with smtplib.SMTP("127.0.0.1", tern.smtp_port, timeout=TIMEOUT) as s:
        assert s.sendmail(sender, rcpts, msg) == {}


def wait_for(pred, what, timeout=20.0):
    end = time.time() + timeout
    while time.time() < end:
        got = pred()
        if got:
            return got
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def parse(data):
    return email.message_from_bytes(data, policy=email.policy.default)


def bounce_of(tern, addr):
    msgs = wait_for(lambda: tern.messages(addr), f"a notice for {addr}")
    assert len(msgs) == 1, msgs
    m = parse(msgs[0])
    assert m.get_content_type() == "multipart/report"
    assert m.get_param("report-type") == "delivery-status"
    parts = list(m.iter_parts())
    assert parts[1].get_content_type() == "message/delivery-status"
    return m, parts


def delivery_status(part):
    """The per-recipient fields of a message/delivery-status part."""
    text = part.as_bytes().decode()
    return text


def test_relay_to_b_with_both_received(tern_factory, dns):
    a, b = make_pair(tern_factory, dns)
    msg = make_message("across", "From A to B.\nSecond line.\n", sender="alice@a.test",
                       to="bob@b.test")
    send(a, "alice@a.test", ["bob@b.test", "carol@b.test"], msg)
    got = wait_for(lambda: b.messages("bob@b.test"), "delivery at B")
    assert len(got) == 1
    text = got[0]
    assert text.count(b"Received: ") == 2
    assert b"by mx.a.test" in text and b"by mx.b.test" in text
    assert text.endswith(b"From A to B.\nSecond line.\n")
    wait_for(lambda: b.messages("carol@b.test"), "second recipient")
    # Delivered: nothing left in A's queue.
    wait_for(lambda: not a.queue_files(), "an empty queue at A")


def test_b_down_defers_then_delivers_once(tern_factory, dns):
    a, b = make_pair(tern_factory, dns, start_b=False)
    send(a, "alice@a.test", ["bob@b.test"],
         make_message("later", "Retried.\n", sender="alice@a.test", to="bob@b.test"))
    # Deferred: the state file says so.
    wait_for(lambda: b"deferred" in a.tern("queue", "list").stdout.encode(),
             "a deferred recipient")
    b.start()
    got = wait_for(lambda: b.messages("bob@b.test"), "delivery after B came up")
    time.sleep(3)   # a few more retry rounds: still exactly one copy
    assert len(b.messages("bob@b.test")) == 1
    assert got[0].endswith(b"Retried.\n")
    wait_for(lambda: not a.queue_files(), "an empty queue at A")


def test_b_rejects_and_sender_gets_a_bounce(tern_factory, dns):
    a, b = make_pair(tern_factory, dns)
    send(a, "alice@a.test", ["nobody@b.test", "bob@b.test"],
         make_message("half", "Body.\n", sender="alice@a.test", to="nobody@b.test"))
    wait_for(lambda: b.messages("bob@b.test"), "the good recipient")
    m, parts = bounce_of(a, "alice@a.test")
    assert m["From"].addresses[0].username.upper() == "MAILER-DAEMON"
    ds = delivery_status(parts[1])
    assert "Final-Recipient: rfc822; nobody@b.test" in ds
    assert "Action: failed" in ds and "Status: 5.1.1" in ds
    assert "bob@b.test" not in ds
    assert parts[2].get_content_type() == "text/rfc822-headers"
    assert "Subject: half" in parts[2].get_content()
    # The bounce came from the null sender.
    raw = a.messages("alice@a.test")[0]
    assert raw.startswith(b"Return-Path: <>")


def test_null_mx_bounces_at_once(tern_factory, dns):
    a, b = make_pair(tern_factory, dns)
    send(a, "alice@a.test", ["someone@nullmx.test"],
         make_message("void", "Body.\n", sender="alice@a.test", to="someone@nullmx.test"))
    m, parts = bounce_of(a, "alice@a.test")
    ds = delivery_status(parts[1])
    assert "Status: 5.1.10" in ds and "nullmx.test" in ds


def test_loop_is_bounced(tern_factory, dns):
    a, b = make_pair(tern_factory, dns, max_received="5")
    hops = "".join(f"Received: from hop{i} by hop{i + 1}; Mon, 1 Jan 2024 00:00:0{i} +0000\r\n"
                   for i in range(5))
    msg = hops.encode() + make_message("loop", "Round and round.\n", sender="alice@a.test",
                              to="bob@b.test")
    send(a, "alice@a.test", ["bob@b.test"], msg)
    m, parts = bounce_of(a, "alice@a.test")
    assert "Status: 5.4.6" in delivery_status(parts[1])
    assert b.messages("bob@b.test") == []


def test_kill_a_with_a_queue_then_deliver_all(tern_factory, dns):
    a, b = make_pair(tern_factory, dns, start_b=False)
    for i in range(20):
        send(a, "alice@a.test", ["bob@b.test"],
             make_message(f"queued {i}", f"Number {i}.\n", sender="alice@a.test",
                          to="bob@b.test"))
    a.kill()
    b.start()
    a.start()
    got = wait_for(lambda: len(b.messages("bob@b.test")) == 20 and b.messages("bob@b.test"),
                   "all 20 at B", timeout=30)
    bodies = sorted(g.rsplit(b"\n\n", 1)[-1] for g in got)
    assert bodies == sorted(f"Number {i}.\n".encode() for i in range(20))
    wait_for(lambda: not a.queue_files(), "an empty queue at A")


def test_transport_map_without_dns(tern_factory):
    b = tern_factory(users=B_USERS, domains="b.test", hostname="mx.b.test")
    b.aliases_file.write_text(B_ALIASES)
    a = tern_factory(start=False, users=A_USERS, domains="a.test", hostname="mx.a.test",
                     trusted_networks="127.0.0.0/8", dns_servers="127.0.0.1:9",
                     transport=f"b.test 127.0.0.1:{b.smtp_port}", queue_hold="no")
    a.aliases_file.write_text(A_ALIASES)
    a.start()
    send(a, "alice@a.test", ["bob@b.test"],
         make_message("mapped", "Via the transport map.\n", sender="alice@a.test",
                      to="bob@b.test"))
    got = wait_for(lambda: b.messages("bob@b.test"), "delivery through the map")
    assert got[0].endswith(b"Via the transport map.\n")


def test_relayhost_with_tls_and_auth(tern_factory):
    b = tern_factory(users=B_USERS, domains="b.test", hostname="mx.b.test", tls=True,
                     submission=True)
    b.aliases_file.write_text(B_ALIASES)
    a = tern_factory(start=False, users=A_USERS, domains="a.test", hostname="mx.a.test",
                     trusted_networks="127.0.0.0/8", dns_servers="127.0.0.1:9",
                     relayhost=f"127.0.0.1:{b.submission_port}",
                     relayhost_user="carol@b.test", relayhost_password="carol-pw",
                     queue_hold="no")
    a.aliases_file.write_text(A_ALIASES)
    a.start()
    # From carol@b.test: the relayhost lets an authenticated user send as herself.
    send(a, "carol@b.test", ["bob@b.test"],
         make_message("smarthost", "Through the relayhost.\n", sender="carol@b.test",
                      to="bob@b.test"))
    got = wait_for(lambda: b.messages("bob@b.test"), "delivery through the relayhost")
    assert got[0].endswith(b"Through the relayhost.\n")
    # B's Received: says the message came over TLS, authenticated (RFC 3848).
    assert b"with ESMTPSA" in got[0]


def test_delay_notice_then_delivery(tern_factory, dns):
    """B down past queue_delay_warning: the sender gets one delay notice
    (Action: delayed), and the message still arrives once B is up."""
    a, b = make_pair(tern_factory, dns, start_b=False, queue_delay_warning="1")
    send(a, "alice@a.test", ["bob@b.test"],
         make_message("slow", "Eventually.\n", sender="alice@a.test", to="bob@b.test"))
    m, parts = bounce_of(a, "alice@a.test")
    ds = delivery_status(parts[1])
    assert "Action: delayed" in ds and "Will-Retry-Until:" in ds
    b.start()
    got = wait_for(lambda: b.messages("bob@b.test"), "delivery after the notice")
    assert got[0].endswith(b"Eventually.\n")
    time.sleep(2)
    assert len(a.messages("alice@a.test")) == 1     # one notice only


def test_queue_hold(tern_factory, dns):
    a, b = make_pair(tern_factory, dns, queue_hold="yes")
    send(a, "alice@a.test", ["bob@b.test"],
         make_message("held", "Held.\n", sender="alice@a.test", to="bob@b.test"))
    time.sleep(2)
    assert b.messages("bob@b.test") == [] and len(a.queue_files()) == 1
    a.settings["queue_hold"] = "no"
    a.write_config()
    a.signal(signal.SIGHUP)
    got = wait_for(lambda: b.messages("bob@b.test"), "delivery after the hold")
    assert got[0].endswith(b"Held.\n")


def test_failed_local_delivery_is_queued_and_retried(tern_factory, dns):
    """A local Maildir that cannot take the message now: the client still
    gets 250 (the message is in the queue), and the queue delivers it once
    the Maildir works again."""
    a, b = make_pair(tern_factory, dns)
    maildir = a.maildir("alice@a.test")
    maildir.mkdir(parents=True, exist_ok=True)
    blocker = maildir / "new"
    if blocker.is_dir():
        blocker.rmdir()
    blocker.write_text("not a directory")
    send(a, "bob@b.test", ["alice@a.test"],
         make_message("retry local", "Local, later.\n", sender="bob@b.test", to="alice@a.test"))
    assert len(a.queue_files()) >= 1
    wait_for(lambda: b"deferred" in a.tern("queue", "list").stdout.encode(),
             "a deferred local recipient")
    blocker.unlink()
    got = wait_for(lambda: a.messages("alice@a.test"), "the retried local delivery")
    assert len(got) == 1 and got[0].endswith(b"Local, later.\n")
    assert got[0].startswith(b"Return-Path: <bob@b.test>\nDelivered-To: alice@a.test\n")


def test_sigterm_mid_relay_delivers_each_once(tern_factory, dns):
    """A normal stop while messages are on their way: after the restart
    every message arrives, none twice."""
    a, b = make_pair(tern_factory, dns, start_b=False)
    for i in range(60):
        send(a, "alice@a.test", ["bob@b.test"],
             make_message(f"burst {i}", f"Burst {i}.\n", sender="alice@a.test",
                          to="bob@b.test"))
    b.start()
    a.signal(signal.SIGHUP)          # a scan now, not at the next retry
    wait_for(lambda: b.messages("bob@b.test"), "the first deliveries")
    assert a.stop() == 0
    a.start()
    got = wait_for(lambda: len(b.messages("bob@b.test")) >= 60 and b.messages("bob@b.test"),
                   "all 60 at B", timeout=30)
    time.sleep(1)
    got = b.messages("bob@b.test")
    subjects = sorted(g.split(b"Subject: ", 1)[1].split(b"\n", 1)[0] for g in got)
    assert subjects == sorted(f"burst {i}".encode() for i in range(60))
