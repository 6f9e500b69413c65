# bcupdate: secure software updates for BeckmanConnect components.
export GOTOOLCHAIN := local
GO      ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X main.version=$(VERSION)
BIN     := bin

.PHONY: help deps build test demo lint fuzz cross bench clean conformance screenshots man release release-check

help: ## show this help
	@awk 'BEGIN {FS = ":.*## "} /^[a-z-]+:.*## / {printf "  make %-8s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

deps: ## install the external tools the tests and conformance use, at the versions they need (scripts/deps.sh; apt-get needs root)
	bash scripts/deps.sh

build: ## build bin/bcpublish, bin/bcagent and bin/bcfleet
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/ ./cmd/bcpublish ./cmd/bcagent ./cmd/bcfleet

test: ## run every test with -race (fuzz seed corpora included)
	$(GO) test -race -count=1 ./...

screenshots: ## refresh docs/screenshots/ from the dashboard's browser tests (needs chromium)
	BCFLEET_SCREENSHOTS=$(CURDIR)/docs/screenshots $(GO) test ./fleet/web -run TestDashboardBrowser -count=1

demo: build ## publish, serve and install a release end to end on loopback
	BIN=$(CURDIR)/$(BIN) bash scripts/demo.sh

lint: ## gofmt check, go vet and staticcheck
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) run honnef.co/go/tools/cmd/staticcheck@v0.8.2 ./...

fuzz: ## run each fuzz target for 30s
	$(GO) test ./repo -run '^$$' -fuzz FuzzValidateTargetPath -fuzztime 30s
	$(GO) test ./repo -run '^$$' -fuzz FuzzCanonicalTargets -fuzztime 30s
	$(GO) test ./internal/archive -run '^$$' -fuzz FuzzExtractTarGz -fuzztime 30s
	$(GO) test ./client -run '^$$' -fuzz FuzzBspatch -fuzztime 30s
	$(GO) test ./client -run '^$$' -fuzz FuzzChainLogRead -fuzztime 30s
	$(GO) test ./signer -run '^$$' -fuzz FuzzVerifyDetached -fuzztime 30s
	$(GO) test ./signer -run '^$$' -fuzz FuzzVerifyAuthenticode -fuzztime 30s

# The public TUF conformance suite, ready to run offline (run.sh and
# third_party/; docs/conformance.md). CI has it beside the checkout too.
TUF_CONFORMANCE ?= $(CURDIR)/../shared/tuf-conformance

conformance: ## run the TUF conformance suite against the agent's TUF layer (TUF_CONFORMANCE=DIR)
	@if [ ! -x "$(TUF_CONFORMANCE)/run.sh" ]; then \
	  echo "make conformance: no TUF conformance suite at $(TUF_CONFORMANCE) (its run.sh is missing); set TUF_CONFORMANCE=DIR to the folder that holds run.sh and third_party/" >&2; \
	  exit 2; \
	fi
	CGO_ENABLED=0 $(GO) build -trimpath -o $(BIN)/tuf-conformance ./internal/conformance
	@rm -f $(BIN)/tuf-conformance.xfails
	@log=$$(mktemp) && rcf=$$(mktemp) && trap 'rm -f "$$log" "$$rcf"' EXIT && \
	{ "$(TUF_CONFORMANCE)/run.sh" "$(abspath $(BIN))/tuf-conformance" $(CONFORMANCE_ARGS); echo $$? >"$$rcf"; } 2>&1 | tee "$$log" && \
	rc=$$(cat "$$rcf") && summary=$$(tail -n 1 "$$log") && \
	if [ "$$rc" -ne 0 ]; then echo "make conformance: the suite failed (exit $$rc)" >&2; exit 1; fi && \
	if ! printf '%s\n' "$$summary" | grep -Eq '^[= ]*[0-9]+ passed(, [0-9]+ deselected)? in [^,]*$$'; then \
	  echo "make conformance: want every test passed and none skipped or xfailed, got: $$summary" >&2; exit 1; \
	fi

bench: build ## benchmarks with the real binaries (needs bsdiff, wrk, nginx, PostgreSQL); writes docs/performance.md
	$(GO) run ./internal/benchtool -bin $(BIN) -size 512 -targets 1000,10000,100000 -out docs/performance.md

cross: ## cross-compile for windows-amd64 and linux-arm64
	GOOS=windows GOARCH=amd64 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/windows-amd64/ ./cmd/bcpublish ./cmd/bcagent
	GOOS=linux GOARCH=arm64 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/linux-arm64/ ./cmd/bcpublish ./cmd/bcagent

man: ## write the man pages and shell completion scripts from the command trees into bin/man and bin/completion
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/ ./cmd/bcpublish ./cmd/bcagent ./cmd/bcfleet
	@mkdir -p $(BIN)/man $(BIN)/completion
	@for p in bcagent bcpublish bcfleet; do \
	  $(BIN)/$$p man >$(BIN)/man/$$p.1 && \
	  for sh in bash zsh fish powershell; do $(BIN)/$$p completion $$sh >$(BIN)/completion/$$p.$$sh || exit 1; done; \
	done
	@echo "man pages in $(BIN)/man (man -l $(BIN)/man/bcagent.1), completion in $(BIN)/completion"

release: ## every package (.debs for linux-amd64 and linux-arm64, the bcagent MSI) and SHA256SUMS into dist/, reproducibly (SIGN_CERT, SIGN_KEY sign the MSI)
	VERSION=$(VERSION) bash scripts/packages.sh --out dist

release-check: ## build every package twice and require the same bytes
	VERSION=$(VERSION) bash scripts/release-check.sh

clean: ## remove build output
	rm -rf $(BIN) dist
