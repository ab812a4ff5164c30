// nodeclean: the machine-level parts of starting and tearing down the real node (operator/local/realnode.ts)
// that need system calls Node.js does not have, so that no iproute2, util-linux or iptables binary is needed.
//
//	nodeclean bridge NAME CIDR        creates the Linux bridge NAME (if missing) with address CIDR, and sets it up
//	nodeclean clean [flags]           kills, unmounts and removes what a real node left behind:
//	  --kill-cgroup NAME   SIGKILLs every process in the cgroup NAME (and below) of every cgroup hierarchy
//	  --kill-exe PATH      SIGKILLs every process whose executable is PATH
//	  --umount DIR         unmounts every mount at or below DIR, deepest first (lazily if busy)
//	  --rm-cgroup NAME     removes the cgroup NAME (and below) in every hierarchy
//	  --link NAME          deletes the network interface NAME
//	  --glob PATTERN       removes the files matching PATTERN (CNI's cached results of the node's network)
//
// Each flag may be repeated; the steps run in the order above. It prints one line per thing it removed and
// exits 1, naming what it could not remove, if anything is left.
package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

const cgroupRoot = "/sys/fs/cgroup"

type list []string

func (l *list) String() string     { return strings.Join(*l, ",") }
func (l *list) Set(v string) error { *l = append(*l, v); return nil }

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: nodeclean bridge NAME CIDR | nodeclean clean [--kill-cgroup NAME] [--kill-exe PATH] [--umount DIR] [--rm-cgroup NAME] [--link NAME] [--glob PATTERN]")
		os.Exit(2)
	}
	switch os.Args[1] {
	case "bridge":
		if len(os.Args) != 4 {
			fmt.Fprintln(os.Stderr, "usage: nodeclean bridge NAME CIDR")
			os.Exit(2)
		}
		if err := bridge(os.Args[2], os.Args[3]); err != nil {
			fmt.Fprintf(os.Stderr, "nodeclean: bridge %s %s: %v\n", os.Args[2], os.Args[3], err)
			os.Exit(1)
		}
	case "clean":
		var killCgroups, killExes, umounts, rmCgroups, links, globs list
		fs := flag.NewFlagSet("clean", flag.ExitOnError)
		fs.Var(&killCgroups, "kill-cgroup", "")
		fs.Var(&killExes, "kill-exe", "")
		fs.Var(&umounts, "umount", "")
		fs.Var(&rmCgroups, "rm-cgroup", "")
		fs.Var(&links, "link", "")
		fs.Var(&globs, "glob", "")
		_ = fs.Parse(os.Args[2:])
		var failed []string
		for _, c := range killCgroups {
			killCgroup(c)
		}
		for _, e := range killExes {
			killExe(e)
		}
		for _, d := range umounts {
			failed = append(failed, umountUnder(d)...)
		}
		for _, c := range rmCgroups {
			failed = append(failed, rmCgroup(c)...)
		}
		for _, l := range links {
			if err := deleteLink(l); err != nil {
				failed = append(failed, fmt.Sprintf("link %s: %v", l, err))
			}
		}
		for _, g := range globs {
			matches, _ := filepath.Glob(g)
			for _, m := range matches {
				if err := os.RemoveAll(m); err != nil {
					failed = append(failed, fmt.Sprintf("%s: %v", m, err))
				} else {
					fmt.Printf("removed %s\n", m)
				}
			}
		}
		if len(failed) > 0 {
			fmt.Fprintf(os.Stderr, "nodeclean: could not remove: %s\n", strings.Join(failed, "; "))
			os.Exit(1)
		}
	default:
		fmt.Fprintf(os.Stderr, "nodeclean: unknown command %q\n", os.Args[1])
		os.Exit(2)
	}
}

func bridge(name, cidr string) error {
	addr, err := netlink.ParseAddr(cidr)
	if err != nil {
		return err
	}
	link, err := netlink.LinkByName(name)
	if err != nil {
		var notFound netlink.LinkNotFoundError
		if !errors.As(err, &notFound) {
			return err
		}
		br := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: name}}
		if err := netlink.LinkAdd(br); err != nil {
			return fmt.Errorf("create: %w", err)
		}
		if link, err = netlink.LinkByName(name); err != nil {
			return err
		}
	}
	if _, ok := link.(*netlink.Bridge); !ok {
		return fmt.Errorf("%s exists and is a %s, not a bridge", name, link.Type())
	}
	addrs, err := netlink.AddrList(link, netlink.FAMILY_V4)
	if err != nil {
		return err
	}
	has := false
	for _, a := range addrs {
		if a.IPNet.String() == addr.IPNet.String() {
			has = true
		}
	}
	if !has {
		if err := netlink.AddrAdd(link, addr); err != nil {
			return fmt.Errorf("add address: %w", err)
		}
	}
	if err := netlink.LinkSetUp(link); err != nil {
		return fmt.Errorf("set up: %w", err)
	}
	fmt.Printf("bridge %s up with %s\n", name, addr.IPNet)
	return nil
}

func deleteLink(name string) error {
	link, err := netlink.LinkByName(name)
	if err != nil {
		var notFound netlink.LinkNotFoundError
		if errors.As(err, &notFound) {
			return nil
		}
		return err
	}
	if err := netlink.LinkDel(link); err != nil {
		return err
	}
	fmt.Printf("deleted link %s\n", name)
	return nil
}

// hierarchies lists the mounted cgroup hierarchies: each directory of /sys/fs/cgroup on cgroup v1 (cpu,
// memory, systemd, unified, …), or /sys/fs/cgroup itself on cgroup v2.
func hierarchies() []string {
	if _, err := os.Stat(filepath.Join(cgroupRoot, "cgroup.controllers")); err == nil {
		return []string{cgroupRoot}
	}
	entries, _ := os.ReadDir(cgroupRoot)
	var out []string
	for _, e := range entries {
		p := filepath.Join(cgroupRoot, e.Name())
		if fi, err := os.Lstat(p); err == nil && fi.IsDir() { // cpu and cpuacct are symlinks to cpu,cpuacct
			out = append(out, p)
		}
	}
	return out
}

// cgroupDirs lists NAME's directory and every one below it in every hierarchy, deepest first.
func cgroupDirs(name string) []string {
	var dirs []string
	for _, h := range hierarchies() {
		_ = filepath.WalkDir(filepath.Join(h, name), func(p string, d os.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				dirs = append(dirs, p)
			}
			return nil
		})
	}
	sort.Slice(dirs, func(i, j int) bool { return strings.Count(dirs[i], "/") > strings.Count(dirs[j], "/") })
	return dirs
}

func killCgroup(name string) {
	seen := map[int]bool{}
	for _, d := range cgroupDirs(name) {
		data, err := os.ReadFile(filepath.Join(d, "cgroup.procs"))
		if err != nil {
			continue
		}
		for _, f := range strings.Fields(string(data)) {
			if pid, err := strconv.Atoi(f); err == nil && !seen[pid] {
				seen[pid] = true
				if syscall.Kill(pid, syscall.SIGKILL) == nil {
					fmt.Printf("killed %d (in cgroup %s)\n", pid, name)
				}
			}
		}
	}
}

func killExe(path string) {
	procs, _ := os.ReadDir("/proc")
	for _, p := range procs {
		pid, err := strconv.Atoi(p.Name())
		if err != nil {
			continue
		}
		if exe, err := os.Readlink(filepath.Join("/proc", p.Name(), "exe")); err == nil && exe == path {
			if syscall.Kill(pid, syscall.SIGKILL) == nil {
				fmt.Printf("killed %d (%s)\n", pid, path)
			}
		}
	}
}

// mountsUnder reads /proc/self/mountinfo for the mount points at or below dir, deepest first.
func mountsUnder(dir string) []string {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []string
	s := bufio.NewScanner(f)
	s.Buffer(make([]byte, 1<<20), 1<<20)
	for s.Scan() {
		fields := strings.Fields(s.Text())
		if len(fields) < 5 {
			continue
		}
		mp := unescape(fields[4])
		if mp == dir || strings.HasPrefix(mp, dir+"/") {
			out = append(out, mp)
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return len(out[i]) > len(out[j]) })
	return out
}

// unescape undoes mountinfo's octal escapes (\040 for a space, …).
func unescape(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func umountUnder(dir string) []string {
	dir = filepath.Clean(dir)
	var failed []string
	for attempt := 0; attempt < 5; attempt++ {
		mounts := mountsUnder(dir)
		if len(mounts) == 0 {
			return nil
		}
		failed = nil
		for _, m := range mounts {
			err := unix.Unmount(m, 0)
			if err == unix.EBUSY {
				err = unix.Unmount(m, unix.MNT_DETACH)
			}
			if err != nil && err != unix.EINVAL && err != unix.ENOENT {
				failed = append(failed, fmt.Sprintf("mount %s: %v", m, err))
			} else if err == nil {
				fmt.Printf("unmounted %s\n", m)
			}
		}
	}
	if left := mountsUnder(dir); len(left) > 0 {
		return append(failed, fmt.Sprintf("still mounted: %s", strings.Join(left, " ")))
	}
	return nil
}

func rmCgroup(name string) []string {
	var failed []string
	for _, d := range cgroupDirs(name) {
		var err error
		// A cgroup whose last process was just killed is busy until the kernel has reaped it.
		for attempt := 0; attempt < 50; attempt++ {
			if err = unix.Rmdir(d); err == nil || err == unix.ENOENT {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		if err != nil && err != unix.ENOENT {
			failed = append(failed, fmt.Sprintf("cgroup %s: %v", d, err))
		} else if err == nil {
			fmt.Printf("removed cgroup %s\n", d)
		}
	}
	return failed
}
