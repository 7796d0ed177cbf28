package webhook

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"

	"github.com/go-json-experiment/json/jsontext"
	admissionv1 "k8s.io/api/admission/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// maxReviewBytes bounds a request body, as the API server bounds objects.
const maxReviewBytes = 7 << 20

// firstBodyChunk is what a body buffer starts at; it grows as bytes arrive, never from
// what Content-Length announces.
const firstBodyChunk = 16 << 10

// reviewRequest is the part of an AdmissionReview v1 request the handlers read. Object
// and OldObject are the objects' JSON, parts of the request body.
type reviewRequest struct {
	UID         types.UID
	Kind        metav1.GroupVersionKind
	Resource    metav1.GroupVersionResource
	SubResource string
	Name        string
	Namespace   string
	Operation   admissionv1.Operation
	Object      []byte
	OldObject   []byte
}

// readReviewBody checks the request's method and media type and reads its body into b,
// which grows as bytes arrive up to maxReviewBytes.
func readReviewBody(b []byte, r *http.Request) ([]byte, error) {
	if r.Method != http.MethodPost {
		return b[:0], fmt.Errorf("method %s: admission reviews are POSTed", r.Method)
	}
	// The media type without its parameters, as mime.ParseMediaType reads it, but
	// without building a map of the parameters on every request.
	ct, _, _ := strings.Cut(r.Header.Get("Content-Type"), ";")
	if !strings.EqualFold(strings.TrimSpace(ct), "application/json") {
		return b[:0], fmt.Errorf("content type %q: want application/json", safeHeader(r.Header.Get("Content-Type")))
	}
	if r.ContentLength > maxReviewBytes {
		return b[:0], fmt.Errorf("request larger than %d bytes (it announced %d)", maxReviewBytes, r.ContentLength)
	}
	b, err := readBody(b[:0], r.Body)
	if err != nil {
		return b[:0], fmt.Errorf("reading the request: %w", err)
	}
	if len(b) > maxReviewBytes {
		return b[:0], fmt.Errorf("request larger than %d bytes", maxReviewBytes)
	}
	return b, nil
}

// safeHeader is a header value short and printable enough to quote in an error.
func safeHeader(v string) string {
	if len(v) > 64 {
		v = v[:64] + "..."
	}
	return strings.ToValidUTF8(v, "?")
}

// readBody appends up to maxReviewBytes+1 bytes of r to b. The buffer doubles as bytes
// arrive, so memory follows what was sent, whatever the request announced.
func readBody(b []byte, r io.Reader) ([]byte, error) {
	for {
		if len(b) == cap(b) {
			b = slices.Grow(b, min(max(len(b), firstBodyChunk), maxReviewBytes+1-len(b)))
		}
		n, err := r.Read(b[len(b):min(cap(b), maxReviewBytes+1)])
		b = b[:len(b)+n]
		if err == io.EOF || len(b) > maxReviewBytes {
			return b, nil
		}
		if err != nil {
			return b, err
		}
	}
}

// jsonReader reads one JSON document through jsontext, which bounds nesting depth,
// rejects invalid UTF-8 and duplicate member names, and checks the syntax of every
// value, skipped or read. Errors never quote the input.
type jsonReader struct {
	dec     jsontext.Decoder
	src     bytes.Buffer
	scratch []byte
	// doc is the document: raw values are slices of it.
	doc []byte
}

// reset makes r read doc.
func (r *jsonReader) reset(doc []byte) {
	r.doc = doc
	r.src = *bytes.NewBuffer(doc)
	r.dec.Reset(&r.src)
}

// release drops r's reference to the document.
func (r *jsonReader) release() {
	r.doc = nil
	r.src = bytes.Buffer{}
	r.dec.Reset(&r.src)
}

// readError is a jsontext error without the input's bytes: jsontext names the
// member where it failed, and a member name is the input's.
type readError struct {
	offset int64
	reason string
}

func (e *readError) Error() string {
	return fmt.Sprintf("invalid JSON at offset %d: %s", e.offset, e.reason)
}

func (r *jsonReader) fail(err error) error {
	if err == nil {
		return nil
	}
	var re *readError
	if errors.As(err, &re) {
		return err
	}
	offset := r.dec.InputOffset()
	var se *jsontext.SyntacticError
	if errors.As(err, &se) {
		offset = se.ByteOffset
	}
	reason := "invalid syntax"
	msg := err.Error()
	switch {
	case errors.Is(err, jsontext.ErrDuplicateName):
		reason = "duplicate object member name"
	case errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF):
		reason = "unexpected end of input"
	case strings.Contains(msg, "max depth"):
		reason = "nesting deeper than 10000"
	case strings.Contains(msg, "UTF-8"):
		reason = "invalid UTF-8"
	case strings.Contains(msg, "escape"):
		reason = "invalid escape in a string"
	}
	return &readError{offset: offset, reason: reason}
}

// typeError reports a value of the wrong kind where want was expected.
func (r *jsonReader) typeError(want string) error {
	if err := r.peekError(); err != nil {
		return err
	}
	return &readError{offset: r.dec.InputOffset(), reason: "want " + want}
}

// peekError is the error PeekKind has cached, if there is one.
func (r *jsonReader) peekError() error {
	if r.dec.PeekKind() != 0 {
		return nil
	}
	_, err := r.dec.ReadValue()
	if err == nil {
		return &readError{offset: r.dec.InputOffset(), reason: "invalid syntax"}
	}
	return r.fail(err)
}

// document reads one top-level value with value, then expects the end of the input.
func (r *jsonReader) document(value func() error) error {
	if err := value(); err != nil {
		return err
	}
	if _, err := r.dec.ReadToken(); err != io.EOF {
		if err == nil {
			return &readError{offset: r.dec.InputOffset(), reason: "data after the top-level value"}
		}
		return r.fail(err)
	}
	return nil
}

// null consumes a null if one comes next.
func (r *jsonReader) null() bool {
	if r.dec.PeekKind() != 'n' {
		return false
	}
	_, err := r.dec.ReadToken()
	return err == nil
}

// object calls member for each member of an object (nothing for null); member must
// consume the value. name is valid only until member reads on.
func (r *jsonReader) object(member func(name []byte) error) error {
	switch r.dec.PeekKind() {
	case 'n':
		_, err := r.dec.ReadToken()
		return r.fail(err)
	case '{':
	default:
		return r.typeError("an object")
	}
	if _, err := r.dec.ReadToken(); err != nil {
		return r.fail(err)
	}
	for {
		switch r.dec.PeekKind() {
		case '}':
			_, err := r.dec.ReadToken()
			return r.fail(err)
		case 0:
			return r.peekError()
		}
		v, err := r.dec.ReadValue()
		if err != nil {
			return r.fail(err)
		}
		name, err := r.unquote(v)
		if err != nil {
			return err
		}
		if err := member(name); err != nil {
			return err
		}
	}
}

// array calls elem for each element of an array (nothing for null); elem must consume
// the element.
func (r *jsonReader) array(elem func() error) error {
	switch r.dec.PeekKind() {
	case 'n':
		_, err := r.dec.ReadToken()
		return r.fail(err)
	case '[':
	default:
		return r.typeError("an array")
	}
	if _, err := r.dec.ReadToken(); err != nil {
		return r.fail(err)
	}
	for {
		switch r.dec.PeekKind() {
		case ']':
			_, err := r.dec.ReadToken()
			return r.fail(err)
		case 0:
			return r.peekError()
		}
		if err := elem(); err != nil {
			return err
		}
	}
}

// unquote returns the content of the string value v, valid until the next unquote.
func (r *jsonReader) unquote(v jsontext.Value) ([]byte, error) {
	if len(v) < 2 || v[0] != '"' {
		return nil, &readError{offset: r.dec.InputOffset(), reason: "want a string"}
	}
	if bytes.IndexByte(v, '\\') < 0 {
		return v[1 : len(v)-1], nil
	}
	var err error
	r.scratch, err = jsontext.AppendUnquote(r.scratch[:0], v)
	if err != nil {
		return nil, &readError{offset: r.dec.InputOffset(), reason: "invalid escape in a string"}
	}
	return r.scratch, nil
}

// str reads a string value; ok is false for null, which leaves a field as it is, as in
// encoding/json.
func (r *jsonReader) str() (s []byte, ok bool, err error) {
	switch r.dec.PeekKind() {
	case 'n':
		_, err := r.dec.ReadToken()
		return nil, false, r.fail(err)
	case '"':
	default:
		return nil, false, r.typeError("a string")
	}
	v, err := r.dec.ReadValue()
	if err != nil {
		return nil, false, r.fail(err)
	}
	s, err = r.unquote(v)
	return s, err == nil, err
}

// stringInto reads a string into dst; null leaves dst as it is.
func (r *jsonReader) stringInto(dst *string) error {
	s, ok, err := r.str()
	if ok && string(s) != *dst {
		*dst = string(s)
	}
	return err
}

// skip moves past one value, checking its syntax.
func (r *jsonReader) skip() error {
	return r.fail(r.dec.SkipValue())
}

// raw reads one value and returns it as a part of the document.
func (r *jsonReader) raw() ([]byte, error) {
	v, err := r.dec.ReadValue()
	if err != nil {
		return nil, r.fail(err)
	}
	end := int(r.dec.InputOffset())
	return r.doc[end-len(v) : end : end], nil
}

// objectReader reads the request's object in place when it returns true; otherwise the
// object is read as raw JSON. It may be nil.
type objectReader func(req *reviewRequest) (bool, error)

// readAdmissionReview reads an AdmissionReview v1 request from body: its envelope, and
// the objects as raw JSON, after checking the syntax of all of it. readObject, when
// not nil, may read the object in the same pass.
func (r *jsonReader) readAdmissionReview(body []byte, req *reviewRequest, readObject objectReader) error {
	r.reset(body)
	defer r.release()
	var apiVersion, kind string
	seen := false
	err := r.document(func() error {
		return r.object(func(name []byte) error {
			switch string(name) {
			case "apiVersion":
				return r.stringInto(&apiVersion)
			case "kind":
				return r.stringInto(&kind)
			case "request":
				if r.null() {
					seen = false
					return nil
				}
				seen = true
				*req = reviewRequest{}
				return r.admissionRequest(req, readObject)
			}
			return r.skip()
		})
	})
	if err != nil {
		return fmt.Errorf("decoding the admission review: %w", err)
	}
	if apiVersion != admissionv1.SchemeGroupVersion.String() || kind != "AdmissionReview" {
		return fmt.Errorf("%s %s: want an AdmissionReview of %s", safeHeader(apiVersion), safeHeader(kind), admissionv1.SchemeGroupVersion)
	}
	if !seen {
		return errors.New("admission review without a request")
	}
	return nil
}

func (r *jsonReader) admissionRequest(req *reviewRequest, readObject objectReader) error {
	return r.object(func(name []byte) error {
		switch string(name) {
		case "uid":
			return r.stringInto((*string)(&req.UID))
		case "kind":
			return r.object(func(name []byte) error {
				switch string(name) {
				case "group":
					return r.stringInto(&req.Kind.Group)
				case "version":
					return r.stringInto(&req.Kind.Version)
				case "kind":
					return r.stringInto(&req.Kind.Kind)
				}
				return r.skip()
			})
		case "resource":
			return r.object(func(name []byte) error {
				switch string(name) {
				case "group":
					return r.stringInto(&req.Resource.Group)
				case "version":
					return r.stringInto(&req.Resource.Version)
				case "resource":
					return r.stringInto(&req.Resource.Resource)
				}
				return r.skip()
			})
		case "subResource":
			return r.stringInto(&req.SubResource)
		case "name":
			return r.stringInto(&req.Name)
		case "namespace":
			return r.stringInto(&req.Namespace)
		case "operation":
			return r.stringInto((*string)(&req.Operation))
		case "object":
			if readObject != nil && r.dec.PeekKind() == '{' {
				start := int(r.dec.InputOffset())
				if read, err := readObject(req); read || err != nil {
					req.Object = bytes.TrimLeft(r.doc[start:r.dec.InputOffset()], " \t\r\n:")
					return err
				}
			}
			return r.rawObject(&req.Object)
		case "oldObject":
			return r.rawObject(&req.OldObject)
		}
		return r.skip()
	})
}

// rawObject reads an embedded object as raw JSON; null leaves dst empty.
func (r *jsonReader) rawObject(dst *[]byte) error {
	if r.null() {
		*dst = nil
		return nil
	}
	raw, err := r.raw()
	*dst = raw
	return err
}
