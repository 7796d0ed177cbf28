package policy

// Private-key detection (DetectPrivateKeys, keys.go) is a pipeline. Each stage is a few
// small files; each format family is one recognizer file with its own cases.
//
//  1. Walk. keys_walk.go reads the object's JSON with jsontext, tracks the field path
//     and hands string values that pass the cheap filter to scanText; it also gathers
//     the members that only mean something together (objectFacts). keys_scanner.go holds
//     the scanner's state, field paths and findings (add, dedupe); keys_split.go joins a
//     PEM block spread over array elements, env vars or members.
//  2. Dispatch. keys_triggers.go finds which kinds of key text a value could hold;
//     keys_scan_text.go (scanText) runs, for each trigger, the peel or recognizer it
//     calls for. Peeled text comes back to scanText one decode level deeper.
//  3. Peel, inside one budget (keys_budget.go) and privateKeys.maxDecodeDepth:
//     keys_peel_escapes.go (JSON escapes, percent escapes), keys_peel_json.go (JSON text
//     inside a string, whole or embedded), keys_peel_base64.go (base64 runs, either
//     alphabet, wrapped, at any alignment), keys_peel_hex.go, keys_peel_gzip.go,
//     keys_peel_source.go (string literals of code, comment and quote prefixes).
//     Decoded bytes go to examineDecoded (keys_classify.go).
//  4. Recognize. Text formats: keys_pem.go (markers, labels, "... PRIVATE KEY" blocks),
//     keys_pem_legacy.go (Proc-Type 4,ENCRYPTED), keys_openvpn.go, keys_ssh2.go,
//     keys_pgp.go, keys_putty.go, keys_age.go, keys_jwk.go (JSON and YAML),
//     keys_wireguard.go, keys_google.go (service-account key files). Decoded bytes:
//     keys_classify.go (classifyKeyBytes) asks keys_openssh.go, keys_keystore.go
//     (PKCS#12, JKS, JCEKS) and keys_der.go (PKCS#1, PKCS#8, SEC1, DSA).
//
// To add a format: add a recognizer file keys_<family>.go; call it from scanText
// (keys_scan_text.go) behind a trigger in findTriggers (keys_triggers.go) if it is text,
// from examineBlock (keys_pem.go) if it is a PEM label, or from classifyKeyBytes
// (keys_classify.go) if it is bytes; add its cases in testdata/keys/<family>.txt
// (keys_cases_test.go runs them).
