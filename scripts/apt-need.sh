# Sourced by the CI and test scripts: `apt_need what:package ...` installs with apt-get (through sudo
# when not root) the package of every `what` that is missing, in one apt-get call. `what` is a command,
# or an absolute path (a file that the package provides). Prints what it installs; returns apt-get's
# status. Nothing happens when everything is there, so a prepared machine needs neither apt nor root.
apt_need() {
    local missing=() p what
    for p in "$@"; do
        what=${p%%:*}
        if [[ $what == /* ]]; then
            [ -e "$what" ] && continue
        else
            command -v "$what" >/dev/null 2>&1 && continue
        fi
        missing+=("${p#*:}")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    local sudo_cmd=""
    [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
    echo "   installing ${missing[*]} (apt-get)"
    $sudo_cmd apt-get update -qq || return
    DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq "${missing[@]}" >/dev/null
}
