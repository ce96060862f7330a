"""A stand-in for `journalctl --follow --output=json`, reading a JSON-lines file.

Used by `tests/tests/agent_journald.rs`: the machines the tests run on (containers, CI)
have no running systemd journal, so the agent's journal source is driven by this fake
instead. It understands the arguments the agent passes and behaves like journalctl where
the agent depends on it:

- every line of the journal file is one entry, printed as it is (it must hold a
  `__CURSOR`); `--after-cursor=C` prints the entries after the one whose cursor is C, and
  an unknown cursor fails like journalctl does ("Failed to seek to cursor", exit 1);
  without it (`--boot --no-tail`) every entry is printed;
- `--unit=U` (repeatable) keeps the entries whose `_SYSTEMD_UNIT` is one of them;
- `--follow`: lines appended to the file later are printed as they come;
- a line `{"__fake_exit": "ID"}` makes the fake exit with status 1 when it reaches it,
  once per ID (a file `CALLS.exit-ID` remembers it), to play a journalctl that dies.

usage: fake_journalctl.py JOURNAL_FILE CALLS_FILE [journalctl arguments...]

Each invocation appends its journalctl arguments, as one JSON array, to CALLS_FILE.
The fake exits when the process that started it is gone.
"""

import json
import os
import sys
import time


def main():
    journal_path, calls_path = sys.argv[1], sys.argv[2]
    arguments = sys.argv[3:]
    with open(calls_path, "a", encoding="utf-8") as calls:
        calls.write(json.dumps(arguments) + "\n")

    after_cursor = None
    units = set()
    follow = False
    for argument in arguments:
        if argument.startswith("--after-cursor="):
            after_cursor = argument[len("--after-cursor="):]
        elif argument.startswith("--unit="):
            units.add(argument[len("--unit="):])
        elif argument == "--follow":
            follow = True

    parent = os.getppid()
    printing = after_cursor is None
    offset = 0
    pending = b""
    while True:
        with open(journal_path, "rb") as journal:
            journal.seek(offset)
            chunk = journal.read()
        offset += len(chunk)
        pending += chunk
        *complete, pending = pending.split(b"\n")
        for line in complete:
            if not line.strip():
                continue
            entry = json.loads(line)
            if "__fake_exit" in entry:
                marker = f"{calls_path}.exit-{entry['__fake_exit']}"
                if printing and not os.path.exists(marker):
                    open(marker, "w").close()
                    sys.stdout.flush()
                    print("fake journalctl: exiting as told", file=sys.stderr)
                    return 1
                continue
            if not printing:
                if entry["__CURSOR"] == after_cursor:
                    printing = True
                continue
            if units and entry.get("_SYSTEMD_UNIT") not in units:
                continue
            sys.stdout.write(line.decode("utf-8") + "\n")
        sys.stdout.flush()
        if not printing:
            print("Failed to seek to cursor: Invalid argument", file=sys.stderr)
            return 1
        if not follow:
            return 0
        if os.getppid() != parent:
            return 0
        time.sleep(0.05)


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BrokenPipeError:
        sys.exit(0)
