package client

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"strings"
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

// Confirm implements Prompter.
func (p *TerminalPrompter) Confirm(ctx context.Context, req ConsentRequest) (bool, string, error) {
	if err := ctx.Err(); err != nil {
		return false, "", err
	}
	w := p.Out
	fmt.Fprintf(w, "\nAuthorization required before installation\n")
	fmt.Fprintf(w, "  Component: %s %s\n", req.Component, req.Version)
	fmt.Fprintf(w, "  Device:    %s (%s)\n", req.DeviceID, req.DeviceModel)
	fmt.Fprintf(w, "  Feature:   %s\n", req.Feature.ID)
	fmt.Fprintf(w, "----------------------------------------------------------------\n%s\n", req.Text)
	fmt.Fprintf(w, "----------------------------------------------------------------\n")
	by := p.By
	for by == "" {
		fmt.Fprint(w, "Your name (recorded with your decision): ")
		name, err := p.line()
		if err != nil {
			return false, "", err
		}
		by = name
		if by == "" {
			fmt.Fprintln(w, "A name is required.")
		}
	}
	fmt.Fprintf(w, "Type yes to turn on %q; anything else leaves it off [no]: ", req.Feature.ID)
	ans, err := p.line()
	if err != nil {
		return false, "", err
	}
	granted := strings.EqualFold(ans, "yes")
	if granted {
		fmt.Fprintf(w, "Authorized by %s.\n", by)
	} else {
		fmt.Fprintf(w, "Not authorized: %s stays off.\n", req.Feature.ID)
	}
	return granted, by, nil
}
