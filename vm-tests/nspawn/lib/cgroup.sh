# shellcheck shell=bash
# cgroup.sh: a cgroup of its own for each systemd-nspawn container. Source it.
#
# Why: with --keep-unit and no systemd on the host (shared/LAB.md), nspawn
# puts the container's systemd in CALLER'S-CGROUP/payload. Every container
# started from the same cgroup then shares one tree: the nginx.service (or
# hactld.service) cgroup of one container is that of every container, and
# systemd stopping the unit in one container kills its processes in all the
# others (two parallel web-cluster.sh runs broke each other that way). So
# each container is started in a cgroup of its own:
#
#   ( nspawn_cgroup_enter NAME && exec systemd-nspawn ... ) &
#
# and nspawn_cgroup_remove NAME removes it once the container is gone.

# nspawn_cgroups NAME: the directories, one per hierarchy systemd uses
# (cgroup2, and the v1 name=systemd one of a hybrid setup), below the
# cgroup this shell is in: .../hactl-NAME.
nspawn_cgroups() {
  local mnt fstype opts rel
  while read -r mnt fstype opts; do
    case $fstype in
      cgroup2) rel=$(awk -F: '$1 == "0" { print $3 }' /proc/self/cgroup) ;;
      cgroup) [[ ,$opts, == *,name=systemd,* ]] || continue
              rel=$(awk -F: '$2 == "name=systemd" { print $3 }' /proc/self/cgroup) ;;
      *) continue ;;
    esac
    echo "$mnt${rel%/}/hactl-$1"
  done < <(awk '{ for (i = 7; $i != "-"; i++); print $5, $(i + 1), $(i + 3) }' /proc/self/mountinfo)
}

# nspawn_cgroup_enter NAME: creates the cgroups and moves the calling
# (sub)shell into them. Run it in the subshell that then execs nspawn.
nspawn_cgroup_enter() {
  local cg found=
  for cg in $(nspawn_cgroups "$1"); do
    found=1
    if ! { mkdir -p "$cg" && echo "$BASHPID" > "$cg/cgroup.procs"; }; then
      echo "cannot put container $1 in cgroup $cg" >&2
      return 1
    fi
  done
  [ -n "$found" ] || { echo "no cgroup hierarchy for container $1 in /proc/self/mountinfo" >&2; return 1; }
}

# nspawn_cgroup_remove NAME: removes the container's cgroups (and what its
# systemd made inside, all empty once its processes are gone), deepest first.
nspawn_cgroup_remove() {
  local cg
  for cg in $(nspawn_cgroups "$1"); do
    [ -d "$cg" ] || continue
    find "$cg" -depth -type d -exec rmdir {} + 2>/dev/null
    [ -d "$cg" ] && echo "warning: cannot remove cgroup $cg (processes left in it?)"
  done
  return 0
}
