// Package demotest runs `make demo` (scripts/demo.sh with freshly built
// binaries) and checks it leaves nothing running. It has only tests.
package demotest
