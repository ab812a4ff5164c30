// runc-noseccomp: the OCI runtime containerd runs on the real node (operator/local/realnode.ts). It removes the
// seccomp profile from a container's bundle (linux.seccomp in config.json) and then executes the runc beside it
// with the same arguments.
//
// Why: runc filters system calls with libseccomp, a C library these machines do not have (and may not install),
// so the runc built here has no seccomp support and refuses any container whose configuration has a profile
// ("seccomp: config provided but seccomp not supported"). The kubelet asks for the RuntimeDefault profile for
// every pod sandbox, whatever the pod says, and containerd turns that into a profile. On this local test node
// containers therefore run without seccomp filtering; every other isolation (namespaces, cgroups, capabilities,
// read-only paths) is runc's own.
package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

func main() {
	self, err := os.Executable()
	if err != nil {
		fail("cannot find its own path: %v", err)
	}
	runc := filepath.Join(filepath.Dir(self), "runc")
	args := os.Args[1:]
	if bundle, ok := createBundle(args); ok {
		if err := dropSeccomp(filepath.Join(bundle, "config.json")); err != nil {
			fail("%v", err)
		}
	}
	if err := syscall.Exec(runc, append([]string{runc}, args...), os.Environ()); err != nil {
		fail("cannot run %s: %v", runc, err)
	}
}

// createBundle finds the bundle directory of a `runc [global flags] create|run [flags] ID` call: its --bundle
// (or -b) flag, or the working directory.
func createBundle(args []string) (string, bool) {
	i := 0
	for ; i < len(args); i++ {
		if args[i] == "create" || args[i] == "run" {
			break
		}
		// Global flags with a separate value: --root, --log, --log-format, --criu, --rootless.
		if !strings.Contains(args[i], "=") && (args[i] == "--root" || args[i] == "--log" || args[i] == "--log-format" || args[i] == "--criu" || args[i] == "--rootless") {
			i++
		}
	}
	if i >= len(args) {
		return "", false
	}
	for j := i + 1; j < len(args); j++ {
		a := args[j]
		switch {
		case a == "--bundle" || a == "-b":
			if j+1 < len(args) {
				return args[j+1], true
			}
		case strings.HasPrefix(a, "--bundle="):
			return strings.TrimPrefix(a, "--bundle="), true
		case strings.HasPrefix(a, "-b="):
			return strings.TrimPrefix(a, "-b="), true
		}
	}
	wd, err := os.Getwd()
	return wd, err == nil
}

// dropSeccomp rewrites the bundle's config.json without linux.seccomp, keeping every other field as it was.
func dropSeccomp(path string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("cannot read %s: %w", path, err)
	}
	var spec map[string]json.RawMessage
	if err := json.Unmarshal(data, &spec); err != nil {
		return fmt.Errorf("cannot parse %s: %w", path, err)
	}
	var linux map[string]json.RawMessage
	if raw, ok := spec["linux"]; !ok || json.Unmarshal(raw, &linux) != nil {
		return nil
	}
	if _, ok := linux["seccomp"]; !ok {
		return nil
	}
	delete(linux, "seccomp")
	if spec["linux"], err = json.Marshal(linux); err != nil {
		return err
	}
	out, err := json.Marshal(spec)
	if err != nil {
		return err
	}
	info, err := os.Stat(path)
	if err != nil {
		return err
	}
	tmp := path + ".noseccomp"
	if err := os.WriteFile(tmp, out, info.Mode().Perm()); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

func fail(format string, a ...any) {
	fmt.Fprintf(os.Stderr, "runc-noseccomp: "+format+"\n", a...)
	os.Exit(1)
}
