#!/bin/sh
# `make run`: the embedded default. A config for the domain "localhost" under
# ./var (made once by `tern init`), a demo user, and ternd in the foreground.
set -e
build=$1
dir=$2
if [ ! -f "$dir/tern.conf" ]; then
	"$build/tern" init "$dir" --domain localhost --port-base 2000 >/dev/null
	password=$(od -An -N9 -tx1 /dev/urandom | tr -d ' \n')
	printf '%s\n' "$password" | "$build/tern" -c "$dir/tern.conf" user add demo@localhost --password-stdin
	printf '%s\n' "$password" | "$build/tern" -c "$dir/tern.conf" user add admin@localhost --password-stdin
	printf '%s\n' "$password" > "$dir/demo-password"
	chmod 600 "$dir/demo-password"
fi
password=$(cat "$dir/demo-password")
cat <<MSG
tern is starting in the foreground (Ctrl-C stops it); config: $dir/tern.conf

  user demo@localhost   password $password
  SMTP        127.0.0.1:2025   swaks --to demo@localhost --server 127.0.0.1:2025
  submission  127.0.0.1:2587   swaks --tls --auth PLAIN --auth-user demo@localhost \\
                                 --auth-password $password --to demo@localhost --server 127.0.0.1:2587
              127.0.0.1:2465   (implicit TLS)
  POP3        127.0.0.1:2110   curl --user demo@localhost:$password pop3://127.0.0.1:2110/1
  POP3S       127.0.0.1:2995   curl -k --user demo@localhost:$password pop3s://127.0.0.1:2995/1
  IMAP        127.0.0.1:2143   curl --user demo@localhost:$password 'imap://127.0.0.1:2143/INBOX;UID=1'
  IMAPS       127.0.0.1:2993   curl -k --user demo@localhost:$password 'imaps://127.0.0.1:2993/INBOX?ALL'
  queue       $build/tern -c $dir/tern.conf queue list
  Maildir     $dir/data/mail/localhost/demo/

MSG
exec "$build/ternd" -c "$dir/tern.conf"
