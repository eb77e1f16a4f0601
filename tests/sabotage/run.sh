#!/usr/bin/env bash
# Sabotage check: plant one deliberate bug in a scratch worktree and require a tier to catch it.
#
#   tests/sabotage/run.sh NAME [pytest arguments]
#
# NAME is a patch in this folder (ack-before-commit, forgetful-inbox, relay-skips-mark-sent,
# journal-skips-quiet-batches).
# Without pytest arguments it runs the chaos tier on one seed (CHECKOUT_CHAOS_SEED, default 1701;
# CHECKOUT_CHAOS_CHECKOUTS as usual). Exit 0: the sabotaged code failed the tests (caught);
# 1: it passed (the tier is blind to that bug); 2: the patch no longer applies or pytest could
# not run. The failure lines are printed, and the whole log is kept in the scratch folder.
set -uo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
name="${1:?usage: tests/sabotage/run.sh NAME [pytest arguments]}"
shift
patch="$here/$name.patch"
[ -f "$patch" ] || { echo "no sabotage named $name (see $here/*.patch)" >&2; exit 2; }
python="$repo/.venv/bin/python"

scratch="$(mktemp -d -t "sabotage-$name-XXXXXX")"
tree="$scratch/tree"
cleanup() { git -C "$repo" worktree remove --force "$tree" >/dev/null 2>&1; }
trap cleanup EXIT

git -C "$repo" worktree add --quiet --detach "$tree" HEAD || exit 2
git -C "$tree" apply "$patch" || { echo "$name.patch does not apply to HEAD" >&2; exit 2; }

# The virtualenv's editable install points at the main tree: the worktree must come first.
export PYTHONPATH="$tree"
where="$(cd "$tree" && "$python" -c 'import services; print(services.__file__)')"
case "$where" in
    "$tree"/*) ;;
    *) echo "the sabotaged tree is not the one imported ($where)" >&2; exit 2 ;;
esac

export CHECKOUT_CHAOS_SEED="${CHECKOUT_CHAOS_SEED:-1701}"
[ "$#" -gt 0 ] || set -- tests/chaos/test_chaos.py
log="$scratch/pytest.log"
echo "sabotage $name: pytest $* (seed $CHECKOUT_CHAOS_SEED), log in $log"
(cd "$tree" && "$python" -m pytest -q -p no:cacheprovider -x "$@") >"$log" 2>&1
code=$?
grep -E '^E   |^(FAILED|ERROR) |^[0-9]+ (passed|failed)' "$log" | cut -c1-400 | head -40
case "$code" in
    0) echo "sabotage $name: NOT caught (the tests passed)"; exit 1 ;;
    1) echo "sabotage $name: caught"; exit 0 ;;
    *) echo "sabotage $name: pytest ended with code $code (not a test failure)" >&2; exit 2 ;;
esac
