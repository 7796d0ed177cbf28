package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
)

// checkDocument is one object read from the inputs of `check`.
type checkDocument struct {
	// Source is "file:doc", the 1-based document index within the file.
	Source string
	// Raw is the object as JSON, exactly as an admission request would carry it.
	Raw []byte
	Obj *unstructured.Unstructured
}

// Label is "kind/namespace/name" (or "kind/name" without a namespace).
func (d checkDocument) Label() string {
	name := d.Obj.GetName()
	if ns := d.Obj.GetNamespace(); ns != "" {
		name = ns + "/" + name
	}
	return d.Obj.GetKind() + "/" + name
}

// KindName is "kind/name", as finding lines print it after file:doc.
func (d checkDocument) KindName() string {
	return d.Obj.GetKind() + "/" + d.Obj.GetName()
}

// stringList is a repeatable string flag, like kubectl's -f.
type stringList []string

func (s *stringList) String() string     { return strings.Join(*s, ",") }
func (s *stringList) Set(v string) error { *s = append(*s, v); return nil }

// Exit codes of check.
const (
	checkAllowed  = 0
	checkRejected = 1
	checkBadInput = 2
)

func checkCommand(args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fset := flag.NewFlagSet("check", flag.ContinueOnError)
	fset.SetOutput(stderr)
	var files stringList
	fset.Var(&files, "f", "file, folder (recursively: *.yaml, *.yml, *.json) or - for stdin; repeatable")
	fset.Var(&files, "filename", "same as -f")
	output := fset.String("o", "", "output: text (default) or json; with --mutate: yaml (default), json or patch")
	mutate := fset.Bool("mutate", false, "also run the sandbox pod injection and print the mutated objects or patches")
	load := loadConfigFlag(fset, stderr)
	fset.Usage = func() {
		fmt.Fprint(stderr, `Usage: sandbox-webhook check [--mutate] [-o FORMAT] [--config FILE] -f PATH [-f PATH...]

Runs the webhook's own validation (and with --mutate its sandbox pod injection) over
Kubernetes objects in files. Secrets and Namespaces among the inputs stand for the
cluster's state. Exit status: 0 all allowed, 1 something rejected, 2 unreadable input.

`)
		fset.PrintDefaults()
	}
	if err := fset.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return &exitError{code: checkBadInput, err: err}
	}
	if fset.NArg() > 0 {
		return &exitError{code: checkBadInput, err: fmt.Errorf("check: unexpected argument %q (inputs are given with -f)", fset.Arg(0))}
	}
	if len(files) == 0 {
		return &exitError{code: checkBadInput, err: errors.New("check: no input: give -f PATH (a file, a folder or - for stdin)")}
	}
	formats := []string{"", "text", "json"}
	if *mutate {
		formats = []string{"", "yaml", "json", "patch"}
	}
	if !slices.Contains(formats, *output) {
		return &exitError{code: checkBadInput, err: fmt.Errorf("check: -o %q is not one of %s", *output, strings.Join(formats[1:], ", "))}
	}
	cfg, err := load()
	if err != nil {
		return err
	}
	docs, err := readCheckInputs(files, stdin)
	if err != nil {
		return &exitError{code: checkBadInput, err: err}
	}
	var rejected bool
	if *mutate {
		rejected, err = mutateDocuments(stdout, stderr, docs, cfg, *output)
	} else {
		rejected, err = validateDocuments(stdout, stderr, docs, cfg, *output)
	}
	if err != nil {
		return &exitError{code: checkBadInput, err: err}
	}
	if rejected {
		return &exitError{code: checkRejected}
	}
	return nil
}

// readCheckInputs reads every document of every input, in order.
func readCheckInputs(paths []string, stdin io.Reader) ([]checkDocument, error) {
	var docs []checkDocument
	for _, p := range paths {
		if p == "-" {
			d, err := decodeDocuments("-", stdin)
			if err != nil {
				return nil, err
			}
			docs = append(docs, d...)
			continue
		}
		info, err := os.Stat(p)
		if err != nil {
			return nil, fmt.Errorf("reading %s: %w", p, err)
		}
		var files []string
		if info.IsDir() {
			err = filepath.WalkDir(p, func(path string, e fs.DirEntry, err error) error {
				if err != nil {
					return err
				}
				switch strings.ToLower(filepath.Ext(path)) {
				case ".yaml", ".yml", ".json":
					if !e.IsDir() {
						files = append(files, path)
					}
				}
				return nil
			})
			if err != nil {
				return nil, fmt.Errorf("reading folder %s: %w", p, err)
			}
		} else {
			files = []string{p}
		}
		for _, name := range files {
			f, err := os.Open(name)
			if err != nil {
				return nil, fmt.Errorf("reading %s: %w", name, err)
			}
			d, err := decodeDocuments(name, f)
			f.Close()
			if err != nil {
				return nil, err
			}
			docs = append(docs, d...)
		}
	}
	return docs, nil
}

// decodeDocuments splits a multi-document YAML or JSON stream into objects; a List's
// items count as documents of their own.
func decodeDocuments(name string, r io.Reader) ([]checkDocument, error) {
	reader := utilyaml.NewYAMLReader(bufio.NewReaderSize(r, 64<<10))
	var docs []checkDocument
	for n := 1; ; n++ {
		chunk, err := reader.Read()
		if errors.Is(err, io.EOF) {
			return docs, nil
		}
		if err != nil {
			return nil, fmt.Errorf("%s:%d: reading: %w", name, n, err)
		}
		if len(bytes.TrimSpace(stripYAMLComments(chunk))) == 0 {
			n--
			continue
		}
		raw, err := utilyaml.ToJSON(chunk)
		if err != nil {
			return nil, fmt.Errorf("%s:%d: not YAML or JSON%s", name, n, yamlErrorLine(err))
		}
		if why := notAnObject(raw); why != "" {
			return nil, fmt.Errorf("%s:%d: not a Kubernetes object: %s", name, n, why)
		}
		obj := &unstructured.Unstructured{}
		if err := obj.UnmarshalJSON(raw); err != nil {
			// The decoder's message may quote the whole document, key and all.
			return nil, fmt.Errorf("%s:%d: not a Kubernetes object: its apiVersion, kind or metadata cannot be read", name, n)
		}
		source := fmt.Sprintf("%s:%d", name, n)
		if obj.IsList() {
			list, err := obj.ToList()
			if err != nil {
				return nil, fmt.Errorf("%s: %w", source, err)
			}
			for i := range list.Items {
				item := &list.Items[i]
				itemRaw, err := item.MarshalJSON()
				if err != nil {
					return nil, fmt.Errorf("%s: item %d: %w", source, i, err)
				}
				docs = append(docs, checkDocument{Source: fmt.Sprintf("%s[%d]", source, i), Raw: itemRaw, Obj: item})
			}
			continue
		}
		docs = append(docs, checkDocument{Source: source, Raw: raw, Obj: obj})
	}
}

// notAnObject says why raw is no Kubernetes object (not an object, no string kind or
// apiVersion), or "" when it may be one. It never quotes raw: a document without a kind
// may be a key file.
func notAnObject(raw []byte) string {
	var head map[string]json.RawMessage
	if err := json.Unmarshal(raw, &head); err != nil {
		return "the document is not a mapping"
	}
	for _, field := range []string{"kind", "apiVersion"} {
		v, ok := head[field]
		if !ok {
			return "it has no " + field
		}
		var s string
		if json.Unmarshal(v, &s) != nil || s == "" {
			return field + " is not a non-empty string"
		}
	}
	return ""
}

// yamlErrorLine is ": line N" from a YAML parser's error, or "": the rest of its
// message may quote the input.
func yamlErrorLine(err error) string {
	if m := yamlLine.FindStringSubmatch(err.Error()); m != nil {
		return ": line " + m[1]
	}
	return ""
}

var yamlLine = regexp.MustCompile(`line (\d+)`)

func stripYAMLComments(b []byte) []byte {
	var out []byte
	for line := range bytes.Lines(b) {
		if t := bytes.TrimSpace(line); len(t) > 0 && t[0] != '#' {
			out = append(out, line...)
		}
	}
	return out
}
