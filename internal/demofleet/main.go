// Command demofleet is make demo's simulated fleet: it enrolls devices
// with the fleet service through its real device API (a one-time token,
// a key of each device's own, proof of possession) and sends one signed
// full report for each, so that the dashboard has a rollout to show:
// notification-client 1.2.0 installed on most, staged, awaiting
// authorization or failed on some, and a few devices that fall silent.
//
//	demofleet -fleet URL -token TOKEN [-devices 40]
package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"time"

	"github.com/beckmanconnect/bcupdate/fleet/wire"
)

func main() {
	fleetURL := flag.String("fleet", "", "the fleet service's `URL`")
	token := flag.String("token", "", "an enrollment `TOKEN` good for -devices uses (bcfleet token create)")
	n := flag.Int("devices", 40, "how many devices to simulate (1 to 500)")
	flag.Parse()
	if *fleetURL == "" || *token == "" || *n < 1 || *n > 500 {
		fmt.Fprintln(os.Stderr, "usage: demofleet -fleet URL -token TOKEN [-devices 1..500]")
		os.Exit(2)
	}
	if err := run(context.Background(), *fleetURL, *token, *n); err != nil {
		fmt.Fprintln(os.Stderr, "demofleet:", err)
		os.Exit(1)
	}
}

func post(ctx context.Context, url string, body []byte, header map[string]string, out any) error {
	req, err := http.NewRequestWithContext(ctx, "POST", url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s %s", url, resp.Status, bytes.TrimSpace(b))
	}
	if out != nil {
		return json.Unmarshal(b, out)
	}
	return nil
}

func run(ctx context.Context, fleetURL, token string, n int) error {
	models := []string{"Navios EX", "DxFLEx", "AQUIOS CL", "CellMek SPS"}
	silent := 0
	for i := range n {
		pub, priv, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return err
		}
		inst := fmt.Sprint(4800 + i)
		enroll, _ := json.Marshal(wire.EnrollRequest{Token: token, PublicKey: pub,
			Enrollee:   wire.Enrollee{Email: fmt.Sprintf("lab.user%d@st-marys.example", i), Name: fmt.Sprintf("Lab User %d", i)},
			Instrument: wire.Instrument{Model: models[i%len(models)], ID: inst, Serial: "SN-" + inst}, AgentVersion: "1.2.0", Time: time.Now().UTC()})
		var er wire.EnrollResponse
		if err := post(ctx, fleetURL+wire.EnrollPath, enroll, map[string]string{wire.SignatureHeader: wire.SignEnroll(priv, enroll)}, &er); err != nil {
			return fmt.Errorf("enroll device %d: %w", i, err)
		}
		nc := wire.Component{Name: "notification-client", Channel: "stable", Installed: "1.2.0", State: "up-to-date",
			ActiveFeatures: []string{"phi-file-transfer"}}
		poll := "1h"
		switch i % 10 {
		case 1:
			nc = wire.Component{Name: "notification-client", Channel: "stable", Installed: "1.1.0", Staged: "1.2.0", State: "staged"}
		case 2:
			nc = wire.Component{Name: "notification-client", Channel: "stable", Installed: "1.1.0", Staged: "1.2.0", State: "awaiting-authorization",
				Reason: "waiting for a person to authorize phi-file-transfer", PendingFeatures: []string{"phi-file-transfer"}}
		case 3:
			if i%20 == 3 {
				nc = wire.Component{Name: "notification-client", Channel: "stable", Installed: "1.1.0", State: "failed", Failed: "1.2.0",
					Reason: "health check failed"}
			}
		case 4:
			if silent < 2 {
				poll = "1s" // falls silent three seconds after this report
				silent++
			}
		}
		rep := wire.Report{DeviceID: er.DeviceID, Counter: 1, Time: time.Now().UTC(), AgentVersion: "1.2.0", PollInterval: poll,
			Components: []wire.Component{{Name: "bcagent", Channel: "stable", Installed: "1.2.0", State: "up-to-date"}, nc},
			TUF:        &wire.TUF{RootVersion: 1, TimestampVersion: 7},
			Audit:      &wire.LogHead{Seq: 5, Hash: hash("audit", i)}, Consent: &wire.LogHead{Seq: 1, Hash: hash("consent", i)}}
		state, _ := json.Marshal(rep.Components)
		rep.Digest = hash(string(state), i)
		body, _ := json.Marshal(rep)
		if err := post(ctx, fleetURL+wire.ReportPath, body, map[string]string{wire.DeviceHeader: er.DeviceID, wire.SignatureHeader: wire.SignReport(priv, body)}, nil); err != nil {
			return fmt.Errorf("report of device %s: %w", er.DeviceID, err)
		}
	}
	fmt.Printf("demofleet: %d simulated devices enrolled and reported\n", n)
	return nil
}

func hash(s string, i int) string {
	h := sha256.Sum256([]byte(fmt.Sprintf("%s/%d", s, i)))
	return hex.EncodeToString(h[:])
}
