#!/usr/bin/env bash
# Reproduce the real-project targets of docs/gates-verification.md under /tmp/oss (nothing of it
# is committed here). Needs PyPI and a Python 3.11; takes about a minute.
#
#   bash bench/setup_oss.sh [PYTHON3.11]
set -euo pipefail

PY=${1:-python3.11}
OSS=/tmp/oss
TOOLS=(ruff==0.17.6 mypy==2.4.1 bandit==1.9.4 import-linter==2.16 grimp==3.19 detect-secrets==1.5.0)
HERE=$(cd "$(dirname "$0")" && pwd)

mkdir -p "$OSS"
cd "$OSS"
"$PY" -m pip download -q --no-deps --no-binary :all: \
    more-itertools==10.1.0 click==8.1.7 itsdangerous==2.1.2 -d "$OSS"

# Pinned identity and dates: the same tree hash on every machine.
export GIT_AUTHOR_NAME=bench GIT_AUTHOR_EMAIL=bench@example.invalid
export GIT_COMMITTER_NAME=bench GIT_COMMITTER_EMAIL=bench@example.invalid
export GIT_AUTHOR_DATE=2024-01-01T00:00:00Z GIT_COMMITTER_DATE=2024-01-01T00:00:00Z

for name in more-itertools-10.1.0 click-8.1.7 itsdangerous-2.1.2; do
    rm -rf "$name"
    tar xzf "$name.tar.gz" --no-same-owner
    (
        cd "$name"
        git init -q -b main
        # `pip install -e` rewrites the sdist's egg-info; keep it out of the tree under test.
        printf '*.egg-info/\n__pycache__/\n' >> .git/info/exclude
        git add -A
        git commit -qm "sdist $name"
    )
done

# Import contracts are ours (the sdists have none): a second commit in the /tmp repos.
for name in click-8.1.7 itsdangerous-2.1.2; do
    cp "$HERE/policies/${name%%-[0-9]*}.importlinter" "$OSS/$name/.importlinter"
    (cd "$OSS/$name" && git add .importlinter && git commit -qm "import-linter contracts")
done

# more-itertools and itsdangerous: today's tools. click 8.1.7 sets filterwarnings=error, which
# pytest 9 turns into a collection error, so its env has the pytest its release pins (7.4.0).
rm -rf /tmp/ossvenv /tmp/ossvenv-click
"$PY" -m venv /tmp/ossvenv
/tmp/ossvenv/bin/python -m pip install -q "${TOOLS[@]}" pytest==9.2.0 pytest-cov==7.1.0 \
    coverage==7.17.3 freezegun
/tmp/ossvenv/bin/python -m pip install -q --no-deps -e "$OSS/itsdangerous-2.1.2"

"$PY" -m venv /tmp/ossvenv-click
/tmp/ossvenv-click/bin/python -m pip install -q "${TOOLS[@]}" pytest==7.4.0 pytest-cov==4.1.0 \
    coverage==7.2.7
/tmp/ossvenv-click/bin/python -m pip install -q --no-deps -e "$OSS/click-8.1.7"

mkdir -p "$OSS/policies"
cp "$HERE"/policies/*.toml "$OSS/policies/"
for name in more-itertools-10.1.0 click-8.1.7 itsdangerous-2.1.2; do
    (cd "$OSS/$name" && echo "$name tree $(git rev-parse 'HEAD^{tree}') $(git status --short | wc -l) dirty")
done
