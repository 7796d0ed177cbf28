package policy

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
)

// benignSeed seeds the generated benign objects.
const benignSeed = 585

// benignConfigMap is a ConfigMap of about n bytes of what teams keep in one: a CA
// bundle, documentation with rules and tables, a JWKS of public keys, checksums,
// percent-encoded URLs and YAML. Every pass of the scanner has something to look at.
func benignConfigMap(t testing.TB, n int) []byte {
	rng := rand.New(rand.NewPCG(benignSeed, 1))
	cert := publicMaterial(t)["certificate"]
	part := n / 6
	doc := repeatTo(part, func(i int) string {
		return fmt.Sprintf("## Step %d\n\n| flag | meaning |\n|------|---------|\n| --retries | how often |\n\n----\n\nRun `agent --step=%d --log-level=debug`.\n", i, i)
	})
	jwks := repeatTo(part, func(i int) string {
		return fmt.Sprintf(`{"kty":"EC","kid":"key-%d","use":"sig","alg":"ES256","crv":"P-256","x":"%s","y":"%s"},`, i,
			base64.RawURLEncoding.EncodeToString(randomBytes(rng, 32)), base64.RawURLEncoding.EncodeToString(randomBytes(rng, 32)))
	})
	sums := repeatTo(part, func(i int) string {
		return fmt.Sprintf("sha512-%s  dist/chunk-%d.js\n", base64.StdEncoding.EncodeToString(randomBytes(rng, 64)), i)
	})
	urls := repeatTo(part, func(i int) string {
		return fmt.Sprintf("link.%d=https://docs.example/search?q=agent%%20sandbox%%2Fsetup&page=%d\n", i, i)
	})
	yaml := repeatTo(part, func(i int) string {
		return fmt.Sprintf("- id: %08x-4b8e-9a51-%012x\n  name: tool-%d\n  enabled: true\n", rng.Uint32(), rng.Uint64()&0xffffffffffff, i)
	})
	raw, err := json.Marshal(map[string]any{"apiVersion": "v1", "kind": "ConfigMap",
		"metadata": map[string]any{"name": "agent-settings", "namespace": "team-a"},
		"data": map[string]any{
			"ca-bundle.pem": repeatTo(part, func(int) string { return cert }),
			"README.md":     doc,
			"jwks.json":     `{"keys":[` + strings.TrimSuffix(jwks, ",") + `]}`,
			"SHA512SUMS":    sums,
			"links":         urls,
			"tools.yaml":    yaml,
		}})
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// packageLock is an npm package-lock.json of about n bytes: names, versions, tarball
// URLs and sha512 integrity strings (base64 runs of 88 characters).
func packageLock(t testing.TB, n int) []byte {
	rng := rand.New(rand.NewPCG(benignSeed, 2))
	packages := map[string]any{"": map[string]any{"name": "agent-tools", "version": "1.0.0"}}
	size := 0
	for i := 0; size < n; i++ {
		name := fmt.Sprintf("pkg-%d-util", i)
		entry := map[string]any{
			"version":   fmt.Sprintf("%d.%d.%d", i%7, i%13, i%5),
			"resolved":  fmt.Sprintf("https://npm.example/%s/-/%s-%d.%d.%d.tgz", name, name, i%7, i%13, i%5),
			"integrity": "sha512-" + base64.StdEncoding.EncodeToString(randomBytes(rng, 64)),
			"license":   "MIT",
		}
		if i%3 == 0 {
			entry["dependencies"] = map[string]any{fmt.Sprintf("pkg-%d-util", i+1): "^1.0.0", fmt.Sprintf("pkg-%d-util", i+2): "~2.1.0"}
		}
		if i%11 == 0 {
			entry["dev"] = true
		}
		packages["node_modules/"+name] = entry
		size += 330
	}
	raw, err := json.Marshal(map[string]any{"name": "agent-tools", "version": "1.0.0", "lockfileVersion": 3, "requires": true, "packages": packages})
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// TestDetectPrivateKeysPassesLargeBenignObjects checks that large objects with nothing
// wrong in them pass with the default budget: a 1 MiB ConfigMap that gives every pass
// something to look at, and a 585 KB package-lock.json, as an object and as the value
// of a ConfigMap.
func TestDetectPrivateKeysPassesLargeBenignObjects(t *testing.T) {
	t.Logf("seed %d", benignSeed)
	lock := packageLock(t, 585_000)
	bundle := publicMaterial(t)["certificate-bundle"]
	for name, raw := range map[string][]byte{
		"configmap-1MiB":              benignConfigMap(t, 1<<20),
		"package-lock-585KB":          lock,
		"package-lock-in-configmap":   configMapWith(string(lock)),
		"sandbox-pod-1MiB":            bigSandboxPod(1 << 20),
		"certificates-1MiB":           configMapWith(repeatTo(1<<20, func(int) string { return bundle })),
		"wrapped-base64-of-text-1MiB": configMapWith(wrap(b64(loremTo(768<<10)), 76)),
	} {
		t.Run(name, func(t *testing.T) {
			cfg := DefaultConfig()
			findings, work, err := detectPrivateKeys(nil, raw, "ConfigMap", cfg)
			if err != nil || len(findings) != 0 {
				t.Fatalf("want a pass without findings, got %+v, %v", findings, err)
			}
			budget := workBudget(len(raw), cfg.PrivateKeys.WorkPerByte)
			t.Logf("%d bytes: work %d (%.1f/byte), %.0f%% of the budget", len(raw), work, float64(work)/float64(len(raw)), 100*float64(work)/float64(budget))
			// A benign object must leave room: half the budget at most.
			if work > budget/2 {
				t.Fatalf("work %d is over half the budget %d", work, budget)
			}
		})
	}
}

// bigSandboxPod is sandboxPod grown to about n bytes in one step, with settings whose
// values are long enough to be looked at.
func bigSandboxPod(n int) []byte {
	var env []map[string]any
	for i := 0; i < n/150; i++ {
		env = append(env, map[string]any{"name": fmt.Sprintf("AGENT_SETTING_%05d", i),
			"value": fmt.Sprintf("--tool-%d=/workspace/tools/%d --mode=fast -- value for the agent's tool configuration", i, i)})
	}
	return sandboxPod(0, env...)
}
