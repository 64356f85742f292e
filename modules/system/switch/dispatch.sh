# shellcheck shell=sh
# The arguments, the system they name, and what runs: the lock and the
# closure check first, then the action.

[ $# -ge 1 ] || usage
action=$1
case $action in
    switch | boot | test) [ $# -le 2 ] || usage ;;
    rollback) [ $# -le 2 ] || usage ;;
    list-generations) [ $# -eq 1 ] || usage ;;
    delete-generations) [ $# -ge 2 ] || usage ;;
    *) usage ;;
esac

if [ $# -eq 2 ] && [ "$action" != rollback ] && [ "$action" != delete-generations ]; then
    system=$2
else
    # <toplevel>/bin/switch-to-configuration or <toplevel>/etc/imago/…
    case $0 in
        */bin/switch-to-configuration) system=${0%/bin/switch-to-configuration} ;;
        */etc/imago/switch-to-configuration) system=${0%/etc/imago/switch-to-configuration} ;;
        *) system="" ;;
    esac
    [ -n "$system" ] || die "cannot tell the system from $0; give it: switch-to-configuration $action SYSTEM"
fi
[ -d "$system" ] || die "system $system is not a directory"
system=$(cd "$system" && pwd -P)
# shellcheck disable=SC2015 # die when either test fails
[ -f "$system/boot.json" ] && [ -x "$system/activate" ] ||
    die "$system is not a system toplevel (no boot.json or activate)"
got_name=$(cat "$system/system-name" 2>/dev/null || true)
[ "$got_name" = "$name" ] ||
    die "$system is the system '$got_name', but this script belongs to '$name'"

case $action in
    boot | test | switch)
        take_lock
        check_complete
        ;;
    delete-generations) take_lock ;;
esac
case $action in
    boot) do_boot ;;
    test) do_test ;;
    switch)
        do_boot
        do_test
        ;;
    rollback) do_rollback "${2:-}" ;;
    list-generations) do_list ;;
    delete-generations)
        shift
        do_delete "$@"
        ;;
esac
