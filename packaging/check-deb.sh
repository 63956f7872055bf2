#!/bin/sh
# Checks a built strangler .deb in a throwaway root: what it installs, with which modes, that
# the shipped config passes `strangler check`, that the unit verifies against the installed
# binary, that the maintainer scripts parse and create the user, and that lintian finds no error.
set -eu

deb=${1:?usage: check-deb.sh PACKAGE.deb}
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
fail() { echo "check-deb: $*" >&2; exit 1; }

dpkg-deb --field "$deb" Package | grep -qx strangler || fail "the package is not named strangler"
dpkg-deb --field "$deb" Depends | grep -q adduser || fail "Depends lacks adduser (postinst creates the user)"
dpkg-deb --control "$deb" "$root/control"
grep -qx /etc/strangler/strangler.toml "$root/control/conffiles" \
    || fail "/etc/strangler/strangler.toml is not a conffile: an upgrade would overwrite the operator's config"
for script in postinst postrm; do
    sh -n "$root/control/$script" || fail "$script does not parse"
done
grep -q 'adduser --system' "$root/control/postinst" || fail "postinst creates no system user"
grep -q 'deb-systemd-helper' "$root/control/postinst" || fail "postinst does not enable the unit"

fs="$root/fs"
dpkg-deb --extract "$deb" "$fs"
for f in usr/bin/strangler usr/lib/systemd/system/strangler.service etc/strangler/strangler.toml \
    usr/share/man/man1/strangler.1.gz usr/share/man/man1/strangler-weight.1.gz \
    usr/share/doc/strangler/copyright usr/share/doc/strangler/examples/strangler.toml; do
    [ -e "$fs/$f" ] || fail "/$f is missing"
done
mode=$(stat -c %a "$fs/etc/strangler/strangler.toml")
[ "$mode" = 640 ] || fail "/etc/strangler/strangler.toml is mode $mode, not 640"

"$fs/usr/bin/strangler" check -c "$fs/etc/strangler/strangler.toml"
"$fs/usr/bin/strangler" --version
zcat "$fs/usr/share/man/man1/strangler.1.gz" | grep -q '^\.TH strangler 1' || fail "strangler(1) is no man page"

# The unit as installed, pointed at the unpacked binary and config.
sed "s|/usr/bin/strangler|$fs/usr/bin/strangler|g; s|/etc/strangler/strangler.toml|$fs/etc/strangler/strangler.toml|g" \
    "$fs/usr/lib/systemd/system/strangler.service" > "$root/strangler.service"
grep -q "^ExecStart=$fs/usr/bin/strangler run" "$root/strangler.service" || fail "the unit does not run /usr/bin/strangler"
if command -v systemd-analyze >/dev/null 2>&1; then
    systemd-analyze verify "$root/strangler.service"
fi

# The maintainer script's user creation, in a root of its own: adduser and chown are replaced by
# stand-ins that record what they were asked.
mkdir -p "$root/bin"
for tool in adduser chown chmod getent deb-systemd-helper deb-systemd-invoke systemctl; do
    printf '#!/bin/sh\necho "%s $*" >> "%s/calls"\n[ "%s" != getent ]\n' "$tool" "$root" "$tool" > "$root/bin/$tool"
    chmod +x "$root/bin/$tool"
done
PATH="$root/bin:$PATH" sh "$root/control/postinst" configure
grep -q '^adduser --system --group .* strangler$' "$root/calls" || fail "postinst did not create the user: $(cat "$root/calls")"
grep -q '^chown strangler:strangler /etc/strangler /etc/strangler/strangler.toml$' "$root/calls" \
    || fail "postinst did not give /etc/strangler to strangler: $(cat "$root/calls")"

lintian --fail-on error --suppress-tags-from-file /dev/null "$deb"
echo "check-deb: $(basename "$deb") ok"
