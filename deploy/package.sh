#!/usr/bin/env bash
# Build the churn-alert packages: a .deb (Debian, Ubuntu) and an .rpm (CentOS, openEuler,
# Kylin, Fedora), both from one staged tree.
#
# Usage: deploy/package.sh [--stage-only] [--binary PATH] [--out DIR]
#
#   --binary PATH  the churn-alert binary to package (default: target/dist/churn-alert; when
#                  it is missing and --stage-only is not given, it is built first with
#                  `cargo build --profile dist --locked --no-default-features --bin churn-alert`)
#   --out DIR      where the results go (default: target/package)
#   --stage-only   lay out the tree and the maintainer scripts, then stop: needs neither
#                  cargo, cargo-deb, rpmbuild nor the network
#
# Stage step (always), into the stage folder (DIR with --stage-only, else target/package):
#   stage/        the files the packages install, as a tree rooted at /
#   scripts/deb/  postinst, prerm, postrm for the .deb (maintainer-scripts)
#   scripts/rpm/  postinst, prerm, postrm for the .rpm (%post, %preun, %postun)
#   stage.list    "MODE /path" of every installed file, sorted by path
#   conffiles     the configuration files that upgrades keep when the admin changed them
# The binary is asked for its man pages and shell completions: `BIN generate-docs TMPDIR`
# must write TMPDIR/man/*.1 and TMPDIR/completions/{churn-alert.bash,_churn-alert,churn-alert.fish}.
#
# Package step (without --stage-only): [package.metadata.deb] and
# [package.metadata.generate-rpm] in Cargo.toml name the files under target/package, so
# then the stage always goes to target/package and --out only chooses where the .deb and
# the .rpm are written. Installs cargo-deb and cargo-generate-rpm with `cargo install` when
# they are missing (or too old), runs `cargo deb` and `cargo generate-rpm`, then checks each
# package: its file list against stage.list, its conffiles, and `churn-alert check` on the
# config and env file extracted from the .deb.
#
# The packaged units differ from deploy/*.service in three ways: the binary is
# /usr/bin/churn-alert, the service runs as the system user churn-alert (created by postinst)
# instead of DynamicUser=yes, and the install notes at the top are replaced.
set -euo pipefail
umask 022
export LC_ALL=C

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

PKG_STAGE_DIR=target/package   # what Cargo.toml's package metadata points at
USER_NAME=churn-alert
STATE_DIR=/var/lib/churn-alert
UNIT_DIR=usr/lib/systemd/system   # searched by systemd on Debian, Ubuntu and the RPM family
ZSH_DEB=usr/share/zsh/vendor-completions/_churn-alert
ZSH_RPM=usr/share/zsh/site-functions/_churn-alert   # the .rpm installs _churn-alert here instead
MIN_CARGO_DEB=2.0.0
MIN_CARGO_GENERATE_RPM=0.15.0   # config = "noreplace"

die() { echo "package.sh: error: $*" >&2; exit 1; }
note() { echo "==> $*"; }

usage() { sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}"; }

stage_only=0
binary=
out=
while [ $# -gt 0 ]; do
    case "$1" in
        --stage-only) stage_only=1 ;;
        --binary) [ $# -ge 2 ] || die "--binary needs a path"; binary=$2; shift ;;
        --binary=*) binary=${1#*=} ;;
        --out) [ $# -ge 2 ] || die "--out needs a directory"; out=$2; shift ;;
        --out=*) out=${1#*=} ;;
        -h|--help) usage; exit 0 ;;
        *) usage >&2; die "unknown argument: $1" ;;
    esac
    shift
done

abspath() { mkdir -p "$1" && (cd "$1" && pwd); }

if [ "$stage_only" = 1 ]; then
    STAGE_OUT=$(abspath "${out:-$PKG_STAGE_DIR}")
    PKG_OUT=
else
    STAGE_OUT=$(abspath "$PKG_STAGE_DIR")
    PKG_OUT=$(abspath "${out:-$PKG_STAGE_DIR}")
fi

TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

# --- The binary ------------------------------------------------------------------------
cargo_target_dir() {
    local dir
    dir=$(cargo metadata --no-deps --format-version 1 2>/dev/null \
        | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
    echo "${dir:-${CARGO_TARGET_DIR:-$ROOT/target}}"
}

if [ -n "$binary" ]; then
    if [ ! -f "$binary" ] || [ ! -x "$binary" ]; then
        die "--binary $binary: not an executable file"
    fi
else
    binary=$(cargo_target_dir)/dist/churn-alert
    if [ ! -x "$binary" ]; then
        if [ "$stage_only" = 1 ]; then
            die "$binary is missing: build it (cargo build --profile dist --locked --no-default-features) or pass --binary"
        fi
        note "building $binary (cargo build --profile dist; about 3 minutes on 2 cores)"
        cargo build --profile dist --locked --no-default-features --bin churn-alert
        [ -x "$binary" ] || die "cargo build did not produce $binary"
    fi
fi
binary=$(cd "$(dirname "$binary")" && pwd)/$(basename "$binary")

# --- Stage ---------------------------------------------------------------------------
# The packaged unit: /usr/bin, the package's system user instead of DynamicUser=yes, and a
# header for the package instead of the manual install notes.
package_unit() { # SRC DEST
    sed -e 's|/usr/local/bin/|/usr/bin/|g' \
        -e "s|^DynamicUser=yes\$|User=$USER_NAME\\nGroup=$USER_NAME|" \
        -e "s|^# A transient unprivileged user is allocated at every start; nothing to create\\.\$|# The system user $USER_NAME, created by the package's postinst (no login, no password).|" \
        -e 's| (really /var/lib/private/[^)]*),|,|' \
        -e '/^# Install:$/,/^#$/d' \
        -e '1a # Installed by the churn-alert package (.deb or .rpm), which does not enable it.' \
        "$1" > "$2"
    chmod 0644 "$2"
    if grep -q 'DynamicUser\|/usr/local\|/var/lib/private\|^# Install:' "$2" \
        || ! grep -q "^User=$USER_NAME\$" "$2" || ! grep -q "^Group=$USER_NAME\$" "$2"; then
        die "$1 no longer has the lines package.sh rewrites (DynamicUser=yes, /usr/local/bin, # Install:); update package_unit()"
    fi
}

stage() {
    local s=$STAGE_OUT/stage docs f name
    rm -rf "$s" "$STAGE_OUT/scripts" "$STAGE_OUT/stage.list" "$STAGE_OUT/conffiles"
    mkdir -p "$s"

    install -D -m 0755 "$binary" "$s/usr/bin/churn-alert"

    # Configuration: the example with its store in the state directory, and the secrets.
    install -d -m 0755 "$s/etc/churn-alert"
    sed "s|^path *= *\"data/churn-alert\"|path = \"$STATE_DIR/store\"|" config.example.toml \
        > "$s/etc/churn-alert/config.toml"
    chmod 0644 "$s/etc/churn-alert/config.toml"
    [ "$(grep -c "^path = \"$STATE_DIR/store\"" "$s/etc/churn-alert/config.toml")" = 1 ] \
        || die "config.example.toml: no [store] line 'path = \"data/churn-alert\"' to rewrite"
    install -m 0600 deploy/churn-alert.env.example "$s/etc/churn-alert/churn-alert.env"

    # systemd units.
    install -d -m 0755 "$s/$UNIT_DIR"
    package_unit deploy/churn-alert.service "$s/$UNIT_DIR/churn-alert.service"
    package_unit deploy/churn-alert@.service "$s/$UNIT_DIR/churn-alert@.service"

    # Man pages and shell completions, from the binary itself.
    docs=$TMP/docs
    rm -rf "$docs" && mkdir -p "$docs"
    "$binary" generate-docs "$docs" || die "$binary generate-docs failed"
    [ -f "$docs/man/churn-alert.1" ] || die "generate-docs wrote no man/churn-alert.1"
    install -d -m 0755 "$s/usr/share/man/man1"
    for f in "$docs"/man/*.1; do
        name=$(basename "$f")
        gzip -9n -c "$f" > "$s/usr/share/man/man1/$name.gz"
        chmod 0644 "$s/usr/share/man/man1/$name.gz"
    done
    for name in churn-alert.bash _churn-alert churn-alert.fish; do
        [ -f "$docs/completions/$name" ] || die "generate-docs wrote no completions/$name"
    done
    install -D -m 0644 "$docs/completions/churn-alert.bash" "$s/usr/share/bash-completion/completions/churn-alert"
    install -D -m 0644 "$docs/completions/_churn-alert" "$s/$ZSH_DEB"
    install -D -m 0644 "$docs/completions/churn-alert.fish" "$s/usr/share/fish/vendor_completions.d/churn-alert.fish"

    # Documentation.
    install -d -m 0755 "$s/usr/share/doc/churn-alert"
    for f in README.md README.zh-CN.md config.example.toml config.example.zh-CN.toml; do
        install -m 0644 "$f" "$s/usr/share/doc/churn-alert/$f"
    done

    # Monitoring: the Grafana dashboard and the Prometheus alerting rules, when present.
    if [ -f deploy/grafana/churn-alert.json ]; then
        install -D -m 0644 deploy/grafana/churn-alert.json "$s/usr/share/churn-alert/grafana/churn-alert.json"
    fi
    if [ -f deploy/prometheus/churn-alert.rules.yml ]; then
        install -D -m 0644 deploy/prometheus/churn-alert.rules.yml "$s/usr/share/churn-alert/prometheus/churn-alert.rules.yml"
    fi

    [ -z "$(find "$s" ! -type f ! -type d)" ] || die "the stage holds something other than files and folders"

    (cd "$s" && find . -type f -printf '%m %P\n') \
        | awk '{ m = $1; sub(/^[^ ]+ /, ""); printf "%04d /%s\n", m, $0 }' \
        | sort -k2 > "$STAGE_OUT/stage.list"
    printf '%s\n' /etc/churn-alert/config.toml /etc/churn-alert/churn-alert.env > "$STAGE_OUT/conffiles"

    write_scripts "$STAGE_OUT/scripts"
}

# --- Maintainer scripts --------------------------------------------------------------
# Debian passes words (configure, remove, purge, upgrade...), RPM the number of copies
# installed after the step (%post 1 = install, 2+ = upgrade; %preun and %postun 0 = erase).
# Debian creates the user with adduser and removes state and user on purge; RPM uses
# groupadd/useradd and has no purge, so its %postun keeps both and says how to remove them.

# Shell fragments shared by both families.
SH_DIRS="# The state directory: the service user's home, private to it.
if [ ! -L $STATE_DIR ]; then
    mkdir -p $STATE_DIR
    chown $USER_NAME: $STATE_DIR
    chmod 0700 $STATE_DIR
fi"
SH_RELOAD="if [ -d /run/systemd/system ]; then
    systemctl daemon-reload >/dev/null 2>&1 || true
fi"
SH_RESTART="# An upgrade restarts the instances that were running (pending deliveries are in the
# store's outbox; ExecStartPre= checks the config first). Nothing is started or enabled.
if [ -d /run/systemd/system ]; then
    systemctl try-restart churn-alert.service 'churn-alert@*.service' >/dev/null 2>&1 || true
fi"
SH_HINT="echo 'churn-alert is installed; the service is neither enabled nor started. Next:'
echo '  1. put the secrets in /etc/churn-alert/churn-alert.env (sudoedit; it stays 0600 root:root)'
echo '  2. adapt /etc/churn-alert/config.toml (routes, schedule), then check it with the secrets:'
echo \"     sudo sh -c 'set -a; . /etc/churn-alert/churn-alert.env; set +a; churn-alert check --config /etc/churn-alert/config.toml'\"
echo '  3. sudo systemctl enable --now churn-alert'"
SH_STOP="# Stop and disable every instance while the unit files still exist.
if [ -d /run/systemd/system ]; then
    systemctl stop churn-alert.service 'churn-alert@*.service' >/dev/null 2>&1 || true
fi
systemctl disable churn-alert.service >/dev/null 2>&1 || true
for link in /etc/systemd/system/*.wants/churn-alert@*.service; do
    [ -L \"\$link\" ] || continue
    systemctl disable \"\$(basename \"\$link\")\" >/dev/null 2>&1 || true
done"

indent() { # PREFIX TEXT: TEXT with PREFIX before each line
    local line
    while IFS= read -r line; do
        printf '%s%s\n' "$1" "$line"
    done <<<"$2"
}

write_scripts() { # DIR
    local d=$1
    mkdir -p "$d/deb" "$d/rpm"

    cat > "$d/deb/postinst" <<EOF
#!/bin/sh
# churn-alert postinst: the system user, its state directory, systemd's view of the units.
set -e

if [ "\$1" = configure ]; then
    if ! getent passwd $USER_NAME >/dev/null; then
        if getent group $USER_NAME >/dev/null; then
            adduser --system --ingroup $USER_NAME --home $STATE_DIR --no-create-home \\
                --shell /usr/sbin/nologin $USER_NAME
        else
            adduser --system --group --home $STATE_DIR --no-create-home \\
                --shell /usr/sbin/nologin $USER_NAME
        fi
    fi
$(indent "    " "$SH_DIRS")
$(indent "    " "$SH_RELOAD")
    if [ -n "\$2" ]; then
$(indent "        " "$SH_RESTART")
    else
$(indent "        " "$SH_HINT")
    fi
fi
exit 0
EOF

    cat > "$d/deb/prerm" <<EOF
#!/bin/sh
# churn-alert prerm: on removal, stop and disable the service (an upgrade leaves it running).
set -e

case "\$1" in
    remove)
$(indent "        " "$SH_STOP")
        ;;
esac
exit 0
EOF

    cat > "$d/deb/postrm" <<EOF
#!/bin/sh
# churn-alert postrm: remove keeps the state (/var/lib/churn-alert) and the user;
# purge deletes both (dpkg itself deletes the conffiles in /etc/churn-alert).
set -e

case "\$1" in
    remove)
$(indent "        " "$SH_RELOAD")
        ;;
    purge)
        rm -rf $STATE_DIR
        if getent passwd $USER_NAME >/dev/null && command -v deluser >/dev/null; then
            deluser --system --quiet $USER_NAME >/dev/null 2>&1 || true
        fi
        if getent group $USER_NAME >/dev/null && command -v delgroup >/dev/null; then
            delgroup --system --quiet --only-if-empty $USER_NAME >/dev/null 2>&1 || true
        fi
$(indent "        " "$SH_RELOAD")
        ;;
esac
exit 0
EOF

    cat > "$d/rpm/postinst" <<EOF
#!/bin/sh
# churn-alert %post (\$1: 1 = install, 2 or more = upgrade): the system user, its state
# directory, systemd's view of the units.
set -e

getent group $USER_NAME >/dev/null || groupadd -r $USER_NAME
getent passwd $USER_NAME >/dev/null \\
    || useradd -r -g $USER_NAME -d $STATE_DIR -M -s /sbin/nologin -c "churn-alert daemon" $USER_NAME
$SH_DIRS
$SH_RELOAD
if [ "\${1:-1}" -ge 2 ]; then
$(indent "    " "$SH_RESTART")
else
$(indent "    " "$SH_HINT")
fi
exit 0
EOF

    cat > "$d/rpm/prerm" <<EOF
#!/bin/sh
# churn-alert %preun (\$1: 0 = erase, 1 = upgrade): on erase, stop and disable the service.
if [ "\${1:-0}" -eq 0 ]; then
$(indent "    " "$SH_STOP")
fi
exit 0
EOF

    cat > "$d/rpm/postrm" <<EOF
#!/bin/sh
# churn-alert %postun (\$1: 0 = erase, 1 = upgrade). RPM has no purge: the state and the
# user are kept (a changed config is kept as *.rpmsave).
$SH_RELOAD
if [ "\${1:-0}" -eq 0 ]; then
    rmdir /etc/churn-alert /usr/share/churn-alert/grafana /usr/share/churn-alert/prometheus \\
        /usr/share/churn-alert /usr/share/doc/churn-alert 2>/dev/null || true
    if [ -d $STATE_DIR ]; then
        echo "churn-alert: kept $STATE_DIR and the user $USER_NAME; to delete them:"
        echo "  rm -rf $STATE_DIR && userdel $USER_NAME"
    fi
fi
exit 0
EOF

    chmod 0755 "$d"/deb/* "$d"/rpm/*
}

note "staging $binary into $STAGE_OUT"
stage
note "$(wc -l < "$STAGE_OUT/stage.list") files staged; list in $STAGE_OUT/stage.list"

if [ "$stage_only" = 1 ]; then
    cat "$STAGE_OUT/stage.list"
    exit 0
fi

# --- Packages ------------------------------------------------------------------------
command -v cargo >/dev/null || die "cargo is needed to build packages"

version_ge() { [ "$(printf '%s\n%s\n' "$1" "$2" | sort -V | head -n1)" = "$2" ]; }

ensure_tool() { # CRATE SUBCOMMAND MIN_VERSION
    local crate=$1 sub=$2 min=$3 have
    if ! command -v "cargo-$sub" >/dev/null 2>&1 \
        && [ ! -x "${CARGO_HOME:-$HOME/.cargo}/bin/cargo-$sub" ]; then
        note "$crate is missing: cargo install --locked $crate (compiles it, a few minutes)"
        cargo install --locked "$crate"
        return
    fi
    # The version from cargo install's records, else from the tool (older ones lack --version).
    have=$(cargo install --list | sed -n "s/^$crate v\\([0-9][0-9.]*\\).*:\$/\\1/p" | sed -n 1p)
    if [ -z "$have" ]; then
        have=$(cargo "$sub" --version 2>/dev/null | sed -n 's/^[^ ]* v\{0,1\}\([0-9][0-9.]*\).*/\1/p' | head -n1) || true
    fi
    if [ -z "$have" ]; then
        note "warning: cannot tell the version of $crate; $min or later is needed"
    elif ! version_ge "$have" "$min"; then
        note "$crate $have is older than $min: cargo install --locked --force $crate"
        cargo install --locked --force "$crate"
    fi
}

ensure_tool cargo-deb deb "$MIN_CARGO_DEB"
ensure_tool cargo-generate-rpm generate-rpm "$MIN_CARGO_GENERATE_RPM"

# Reproducible archives: file times and build time from the last commit.
if [ -z "${SOURCE_DATE_EPOCH:-}" ]; then
    SOURCE_DATE_EPOCH=$(git log -1 --format=%ct 2>/dev/null) || SOURCE_DATE_EPOCH=
    [ -z "$SOURCE_DATE_EPOCH" ] || export SOURCE_DATE_EPOCH
fi

build=$TMP/build
mkdir -p "$build"
note "cargo deb"
cargo deb --no-build --no-strip --output "$build/"
note "cargo generate-rpm"
# gzip payload: readable by every rpm in use, CentOS 7's included (zstd needs rpm 4.14+).
cargo generate-rpm --payload-compress gzip --output "$build/"

shopt -s nullglob
debs=("$build"/churn-alert_*.deb)
rpms=("$build"/churn-alert-*.rpm)
shopt -u nullglob
[ ${#debs[@]} = 1 ] || die "expected one .deb from cargo deb, found ${#debs[@]}"
[ ${#rpms[@]} = 1 ] || die "expected one .rpm from cargo generate-rpm, found ${#rpms[@]}"
deb=$PKG_OUT/$(basename "${debs[0]}")
rpm_file=$PKG_OUT/$(basename "${rpms[0]}")
mv -f "${debs[0]}" "$deb"
mv -f "${rpms[0]}" "$rpm_file"

# --- Verify --------------------------------------------------------------------------
problems=0
compare_lists() { # LABEL EXPECTED ACTUAL
    if diff -u "$2" "$3" > "$TMP/diff"; then
        note "$1: the file list matches stage.list"
    else
        echo "package.sh: $1: the file list differs from stage.list (- expected, + packaged):" >&2
        cat "$TMP/diff" >&2
        problems=$((problems + 1))
    fi
}

check_owners() { # LABEL FILE: FILE lists "owner path" of files not owned by root
    if [ -s "$2" ]; then
        echo "package.sh: $1: files not owned by root:" >&2
        sed 's/^/    /' "$2" >&2
        problems=$((problems + 1))
    fi
}

if command -v dpkg-deb >/dev/null; then
    note "$(basename "$deb"):"
    dpkg-deb -f "$deb" Package Version Architecture Depends Installed-Size | sed 's/^/    /'
    # cargo-deb adds the Debian copyright file.
    { cat "$STAGE_OUT/stage.list"; echo "0644 /usr/share/doc/churn-alert/copyright"; } \
        | sort -k2 > "$TMP/deb.expected"
    dpkg-deb -c "$deb" | awk '
        function octal(p,   i, m, c) {
            m = 0
            for (i = 2; i <= 10; i++) {
                c = substr(p, i, 1)
                if (c != "-" && c != "S" && c != "T") m += 2 ^ (9 - i + 1)
            }
            if (substr(p, 4, 1) ~ /[sS]/) m += 2048
            if (substr(p, 7, 1) ~ /[sS]/) m += 1024
            if (substr(p, 10, 1) ~ /[tT]/) m += 512
            return sprintf("%04o", m)
        }
        $1 !~ /^d/ {
            path = $6; sub(/^\.?\//, "/", path); if (path !~ /^\//) path = "/" path
            if ($2 != "root/root" && $2 != "0/0") print $2, path > owners
            print octal($1), path
        }' owners="$TMP/deb.owners" | sort -k2 > "$TMP/deb.actual"
    check_owners "$(basename "$deb")" "$TMP/deb.owners"
    compare_lists "$(basename "$deb")" "$TMP/deb.expected" "$TMP/deb.actual"
    note "conffiles:"
    dpkg-deb -I "$deb" conffiles | tee "$TMP/deb.conffiles" | sed 's/^/    /'
    if ! diff -q <(sort "$STAGE_OUT/conffiles") <(sort "$TMP/deb.conffiles") >/dev/null; then
        echo "package.sh: the .deb's conffiles differ from $STAGE_OUT/conffiles" >&2
        problems=$((problems + 1))
    fi
    for script in postinst prerm postrm; do
        dpkg-deb -I "$deb" "$script" >/dev/null 2>&1 \
            || { echo "package.sh: the .deb has no $script" >&2; problems=$((problems + 1)); }
    done

    note "churn-alert check on the packaged config and env file (from the .deb)"
    x=$TMP/deb-root
    mkdir -p "$x"
    dpkg-deb -x "$deb" "$x"
    # shellcheck disable=SC1091 # the packaged env file
    if ( set -a; . "$x/etc/churn-alert/churn-alert.env"; set +a
         "$x/usr/bin/churn-alert" check --config "$x/etc/churn-alert/config.toml" ); then
        note "check passed"
    else
        echo "package.sh: churn-alert check failed on the packaged config" >&2
        problems=$((problems + 1))
    fi
else
    note "dpkg-deb is not installed: the .deb is not verified (apt-get install dpkg)"
fi

if command -v rpm >/dev/null; then
    note "$(basename "$rpm_file"):"
    rpm -qp --qf '    %{NAME} %{VERSION}-%{RELEASE} %{ARCH}\n' "$rpm_file"
    rpm -qp --requires "$rpm_file" | sed 's/^/    requires: /'
    sed "s|^\\([0-7]*\\) /$ZSH_DEB\$|\\1 /$ZSH_RPM|" "$STAGE_OUT/stage.list" | sort -k2 > "$TMP/rpm.expected"
    rpm -qp --qf '[%{FILEMODES:octal} %{FILEUSERNAME}:%{FILEGROUPNAME} %{FILENAMES}\n]' "$rpm_file" \
        | awk '{
            if ($2 != "root:root") print $2, $3 > owners
            m = $1; if (length(m) > 4) m = substr(m, length(m) - 3)
            while (length(m) < 4) m = "0" m
            print m, $3
        }' owners="$TMP/rpm.owners" | sort -k2 > "$TMP/rpm.actual"
    check_owners "$(basename "$rpm_file")" "$TMP/rpm.owners"
    compare_lists "$(basename "$rpm_file")" "$TMP/rpm.expected" "$TMP/rpm.actual"
    note "config files (noreplace):"
    rpm -qcp "$rpm_file" | sed 's/^/    /'
    if ! diff -q <(sort "$STAGE_OUT/conffiles") <(rpm -qcp "$rpm_file" | sort) >/dev/null; then
        echo "package.sh: the .rpm's config files differ from $STAGE_OUT/conffiles" >&2
        problems=$((problems + 1))
    fi
    for tag in POSTIN PREUN POSTUN; do
        [ "$(rpm -qp --qf "%{$tag}" "$rpm_file")" != "(none)" ] \
            || { echo "package.sh: the .rpm has no $tag script" >&2; problems=$((problems + 1)); }
    done
else
    note "rpm is not installed: the .rpm's file list is not verified (apt-get install rpm)"
fi

note "packages:"
ls -l "$deb" "$rpm_file"
[ "$problems" = 0 ] || die "$problems problem(s) found in the packages (above)"
