package clitest

import (
	"bytes"
	"fmt"
	"io"
	"sync"
	"testing"

	"github.com/urfave/cli/v2"
)

// HelpParity checks, until the function it returns is called, that every
// help page urfave/cli prints (its HelpPrinter) is the same, byte for byte,
// as upstream urfave/cli v2.27.7 renders it with text/template
// (templateHelp). The programs link a copy of urfave/cli that renders help
// without text/template (internal/third_party/urfave-cli), to keep the
// agent small; this is what holds the copy to upstream's output. It swaps
// a package variable of urfave/cli, so a test that calls it must not run in
// parallel with others that print help.
func HelpParity(t testing.TB) (stop func()) {
	t.Helper()
	for i, want := range []string{cli.AppHelpTemplate, cli.CommandHelpTemplate, cli.SubcommandHelpTemplate} {
		if want != upstreamLayouts[i] {
			t.Errorf("urfave/cli's built-in help template %d differs from upstream v2.27.7's", i)
		}
	}
	var mu sync.Mutex
	orig := cli.HelpPrinter
	cli.HelpPrinter = func(w io.Writer, templ string, data interface{}) {
		var got, want bytes.Buffer
		orig(&got, templ, data)
		templateHelp(&want, templ, data, nil)
		if !bytes.Equal(got.Bytes(), want.Bytes()) {
			mu.Lock()
			t.Errorf("help for %s differs from urfave/cli's templates:\n--- got\n%s\n--- want (text/template)\n%s", helpSubject(data), got.Bytes(), want.Bytes())
			mu.Unlock()
		}
		_, _ = w.Write(got.Bytes())
	}
	return func() { cli.HelpPrinter = orig }
}

func helpSubject(data interface{}) string {
	switch d := data.(type) {
	case *cli.App:
		return d.HelpName
	case *cli.Command:
		return d.HelpName
	}
	return fmt.Sprintf("%T", data)
}
