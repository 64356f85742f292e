# shellcheck shell=sh
# Services of the new system after activation: systemd units (stopped,
# started, restarted or reloaded as NixOS does) or busybox init's inittab
# (`test`).

# The unit kinds switching manages in /etc/systemd/system: the triggers
# (timers, sockets, path units) first, then services.
unit_globs='*.timer *.socket *.path *.service'

# The units that some target of the units directory $1 wants, one a line,
# each once.
wanted_units() {
    for w in "$1"/*.target.wants/*; do
        [ -e "$w" ] || [ -L "$w" ] || continue
        echo "${w##*/}"
    done | sort -u
}

# Stop the units of the running system that the new one lacks or masks,
# before activation: their unit files and the /etc they read are still there
# (systemd). Triggers go first, so that none starts a service being
# stopped. The units of a kind are stopped by one `systemctl stop`, so that
# one of them that requires another (sshd and sshd-keygen) is said and
# stopped even when stopping the other would take it down first.
systemd_stop_removed() {
    old=$1
    new_units="$system/etc/systemd/system"
    old_units="$old/etc/systemd/system"
    status=0
    [ -n "$old" ] && [ -d "$old_units" ] || return 0
    for glob in $unit_globs; do
        stop=""
        for u in "$old_units"/$glob; do
            [ -e "$u" ] || continue
            unit=${u##*/}
            # Kept unless the new system masks it (a link to /dev/null:
            # `systemd.units.<name>.enable = false`).
            if [ -e "$new_units/$unit" ] && [ "$(readlink "$new_units/$unit")" != /dev/null ]; then
                continue
            fi
            systemctl is-active --quiet "$unit" || continue
            echo "switch-to-configuration: stopping $unit"
            stop="$stop $unit"
        done
        # Unit names have no white space (systemd escapes it).
        # shellcheck disable=SC2086
        [ -z "$stop" ] || systemctl stop $stop || status=1
    done
    return $status
}

# Start and restart units after activation (systemd), as NixOS does:
# - a unit a target wants that the old system's targets did not want is
#   started (services, timers, sockets, path units alike);
# - a changed service or timer is restarted when a target wants it or it is
#   active (a socket- or timer-started service that is running);
# - a changed path unit is left alone: the daemon-reload applies its new
#   paths;
# - a changed socket is left alone too (restarting it would take the
#   listening socket from a running service): it takes effect when it is
#   restarted by hand or at the next boot, which is said.
systemd_services() {
    old=$1
    new_units="$system/etc/systemd/system"
    old_units="$old/etc/systemd/system"
    systemctl daemon-reload || echo "switch-to-configuration: systemctl daemon-reload failed" >&2
    status=0
    new_wanted=$(wanted_units "$new_units")
    old_wanted=""
    [ -n "$old" ] && old_wanted=$(wanted_units "$old_units")
    # Services first, then the triggers that start them. Unit names have
    # no white space (systemd escapes it).
    for glob in '*.service' '*.socket' '*.path' '*.timer'; do
        names=$(
            for u in $new_wanted; do
                # shellcheck disable=SC2254 # $glob is a pattern
                case $u in $glob) echo "$u" ;; esac
            done
            for u in "$new_units"/$glob; do
                [ -f "$u" ] && echo "${u##*/}"
            done
        )
        for unit in $(printf '%s\n' "$names" | sort -u); do
            systemd_unit "$unit" || status=1
        done
    done
    return $status
}

# What switching does to one unit of the new system (see above).
systemd_unit() {
    unit=$1
    wanted=false
    was_wanted=false
    printf '%s\n' "$new_wanted" | grep -qxF -- "$unit" && wanted=true
    printf '%s\n' "$old_wanted" | grep -qxF -- "$unit" && was_wanted=true
    if $wanted && ! $was_wanted; then
        echo "switch-to-configuration: starting $unit"
        systemctl start "$unit"
        return
    fi
    [ -n "$old" ] && [ -e "$old_units/$unit" ] && [ -e "$new_units/$unit" ] || return 0
    cmp -s "$old_units/$unit" "$new_units/$unit" && return 0
    case $unit in
        *.path) return 0 ;;
        *.socket)
            echo "switch-to-configuration: $unit changed: it is not restarted (its service may hold the socket); run 'systemctl restart $unit' or reboot to apply it"
            return 0
            ;;
    esac
    $wanted || systemctl is-active --quiet "$unit" || return 0
    # reloadIfChanged: the new ExecReload replaces what runs (the
    # firewall's ruleset, in one transaction).
    if grep -qx 'X-ReloadIfChanged=true' "$new_units/$unit"; then
        echo "switch-to-configuration: reloading $unit"
        systemctl reload-or-restart "$unit"
        return
    fi
    echo "switch-to-configuration: restarting $unit"
    systemctl restart "$unit"
}

# Reload inittab and run the `once` services that are new (busybox init).
busybox_services() {
    old=$1
    kill -HUP "$init_pid" || echo "switch-to-configuration: could not signal init" >&2
    grep '^[^#]*::once:' "$system/etc/inittab" | while IFS= read -r line; do
        if [ -n "$old" ] && [ -f "$old/etc/inittab" ] && grep -qxF "$line" "$old/etc/inittab"; then
            continue
        fi
        cmd=${line#*::once:}
        echo "switch-to-configuration: starting $cmd"
        (sh -c "$cmd" </dev/null >"$console" 2>&1 &)
    done
}

do_test() {
    old=$(readlink "$run/current-system" 2>/dev/null || true)
    stopped=0
    if [ "$init_system" = systemd ]; then
        systemd_stop_removed "$old" || stopped=1
    fi
    if ! "$system/activate" "$system"; then
        die "activation of $system failed; the running system ${old:-(unknown)} is still current"
    fi
    paused_after activation
    if [ "$init_system" = systemd ]; then
        # shellcheck disable=SC2015 # die when either fails
        systemd_services "$old" && [ $stopped = 0 ] ||
            die "some services of $system failed to start or stop"
    else
        busybox_services "$old"
    fi
    echo "switch-to-configuration: $system is the running system"
}
