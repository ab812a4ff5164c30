// kpt's `fn` commands (fn eval, fn render, fn doc, fn source, fn sink), built from kpt's own module.
//
// kpt's main package cannot be built from the Go module proxy: its `alpha` command group imports
// github.com/kptdev/kpt/rollouts, a module version the proxy does not serve. This is kpt's main.go and
// run.GetMain with the root command holding only what the tests run, `kpt fn ...` (the same
// commands/fn.GetCommand kpt registers) and `kpt version`; pkg, live and alpha are left out.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"

	"github.com/kptdev/kpt/commands/fn"
	"github.com/kptdev/kpt/pkg/lib/errors"
	"github.com/kptdev/kpt/pkg/lib/errors/resolver"
	"github.com/kptdev/kpt/pkg/lib/util/cmdutil"
	"github.com/kptdev/kpt/pkg/printer"
	"github.com/spf13/cobra"
	"k8s.io/component-base/cli"
	"k8s.io/klog/v2"
	k8scmdutil "k8s.io/kubectl/pkg/cmd/util"
	"sigs.k8s.io/kustomize/kyaml/commandutil"
)

// version is set by the build (-X main.version=...).
var version = "unknown"

func main() {
	os.Exit(runMain())
}

func runMain() int {
	klog.InitFlags(nil)
	cmd := getMain(context.Background())
	if err := cli.RunNoErrOutput(cmd); err != nil {
		return handleErr(cmd, err)
	}
	return 0
}

// getMain is kpt's run.GetMain without the pager, the pkg, live and alpha commands.
func getMain(ctx context.Context) *cobra.Command {
	os.Setenv(commandutil.EnableAlphaCommmandsEnvName, "true")
	cmd := &cobra.Command{
		Use:           "kpt",
		Short:         "kpt's fn commands (built by Slipway's e2e/controlplane/build.sh)",
		SilenceUsage:  true,
		SilenceErrors: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return cmd.Usage()
		},
	}
	cmd.PersistentFlags().AddGoFlagSet(flag.CommandLine)
	cmd.PersistentFlags().BoolVar(&printer.TruncateOutput, "truncate-output", true, "Enable the truncation for output")
	ctx = printer.WithContext(ctx, printer.New(cmd.OutOrStdout(), cmd.ErrOrStderr()))
	cmd.InitDefaultHelpCmd()
	cmd.AddCommand(fn.GetCommand(ctx, "kpt"))
	cmd.PersistentFlags().BoolVar(&cmdutil.StackOnError, "stack-trace", false, "Print a stack-trace on failure")
	cmd.AddCommand(&cobra.Command{
		Use:   "version",
		Short: "Print the version number of kpt",
		Run:   func(_ *cobra.Command, _ []string) { fmt.Println(version) },
	})
	return cmd
}

// handleErr is kpt's main.handleErr.
func handleErr(cmd *cobra.Command, err error) int {
	if re, resolved := resolver.ResolveError(err); resolved {
		if re.Message != "" {
			fmt.Fprintf(cmd.ErrOrStderr(), "%s \n", re.Message)
		}
		return re.ExitCode
	}
	var kptErr *errors.Error
	if errors.As(err, &kptErr) {
		unwrapped, ok := errors.UnwrapErrors(kptErr)
		if ok && !cmdutil.PrintErrorStacktrace() {
			fmt.Fprintf(cmd.ErrOrStderr(), "Error: %s \n", unwrapped.Error())
			return 1
		}
		fmt.Fprintf(cmd.ErrOrStderr(), "%s \n", kptErr.Error())
		return 1
	}
	k8scmdutil.CheckErr(err)
	return 1
}
