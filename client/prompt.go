package client

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/beckmanconnect/bcupdate/internal/textsafe"
)

// TerminalPrompter asks at a terminal. It shows the component, version,
// device and the feature's full text, and takes only a typed "yes" as
// authorization: anything else, including an empty line, is "no".
type TerminalPrompter struct {
	In  io.Reader
	Out io.Writer
	// By is who is deciding; if empty the prompter asks for a name.
	By string
	r  *bufio.Reader
}

func (p *TerminalPrompter) line() (string, error) {
	if p.r == nil {
		p.r = bufio.NewReader(p.In)
	}
	s, err := p.r.ReadString('\n')
	if err == io.EOF && s == "" {
		return "", ErrNoAnswer
	}
	if err != nil && !(err == io.EOF && s != "") {
		return "", fmt.Errorf("reading the answer: %w", err)
	}
	return strings.TrimSpace(s), nil
}

// Confirm implements Prompter. Everything it shows from metadata or
// configuration is escaped (textsafe), so a feature text or a device name
// cannot move the cursor, erase or reorder what the person reads; the
// description keeps its line breaks and tabs. A typed name must be
// printable text, or it is asked for again.
func (p *TerminalPrompter) Confirm(ctx context.Context, req ConsentRequest) (bool, string, error) {
	if err := ctx.Err(); err != nil {
		return false, "", err
	}
	if err := textsafe.Check(p.By, false); err != nil {
		return false, "", usagef("--by: %v", err)
	}
	esc := textsafe.Escape
	w := p.Out
	fmt.Fprintf(w, "\nAuthorization required before installation\n")
	fmt.Fprintf(w, "  Component: %s %s\n", esc(req.Component), esc(req.Version))
	fmt.Fprintf(w, "  Device:    %s (%s)\n", esc(req.DeviceID), esc(req.DeviceModel))
	fmt.Fprintf(w, "  Feature:   %s\n", esc(req.Feature.ID))
	fmt.Fprintf(w, "----------------------------------------------------------------\n%s\n", showText(req.Text))
	fmt.Fprintf(w, "----------------------------------------------------------------\n")
	by := p.By
	for by == "" {
		fmt.Fprint(w, "Your name (recorded with your decision): ")
		name, err := p.line()
		if err != nil {
			return false, "", err
		}
		switch err := textsafe.Check(name, false); {
		case name == "":
			fmt.Fprintln(w, "A name is required.")
		case err != nil:
			fmt.Fprintf(w, "That name cannot be recorded: %v. Type it again.\n", err)
		default:
			by = name
		}
	}
	fmt.Fprintf(w, "Type yes to turn on \"%s\"; anything else leaves it off [no]: ", esc(req.Feature.ID))
	ans, err := p.line()
	if err != nil {
		return false, "", err
	}
	granted := strings.EqualFold(ans, "yes")
	if granted {
		fmt.Fprintf(w, "Authorized by %s.\n", esc(by))
	} else {
		fmt.Fprintf(w, "Not authorized: %s stays off.\n", esc(req.Feature.ID))
	}
	return granted, by, nil
}

// showText renders a feature text (FeatureText: title, blank line,
// description) for a terminal: the title on one line, the description
// with its line breaks and tabs; everything else that is not printable is
// escaped.
func showText(text string) string {
	title, desc, ok := strings.Cut(text, "\n\n")
	if !ok {
		return textsafe.EscapeMultiline(text)
	}
	return textsafe.Escape(title) + "\n\n" + textsafe.EscapeMultiline(desc)
}
