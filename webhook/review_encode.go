package webhook

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"unicode/utf8"

	"gomodules.xyz/jsonpatch/v2"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"
)

// writeReview answers with the AdmissionReview of resp, encoded as encoding/json
// encodes admissionv1.AdmissionReview.
func writeReview(w http.ResponseWriter, uid types.UID, resp admission.Response) {
	writeReviewWith(w, uid, resp, &reviewMemory{})
}

// writeReviewWith is writeReview encoding into mem's buffers.
func writeReviewWith(w http.ResponseWriter, uid types.UID, resp admission.Response, mem *reviewMemory) {
	resp.UID = uid
	if resp.Result == nil {
		resp.Result = &metav1.Status{}
	}
	if resp.Result.Code == 0 {
		resp.Result.Code = http.StatusOK
	}
	b, patch, err := appendReview(mem.review[:0], mem.patch[:0], &resp)
	if err != nil {
		resp = admission.Errored(http.StatusInternalServerError, err)
		resp.UID = uid
		if b, patch, err = appendReview(b[:0], patch[:0], &resp); err != nil {
			mem.review, mem.patch = b[:0], patch[:0]
			http.Error(w, "encoding the admission response", http.StatusInternalServerError)
			return
		}
	}
	mem.review, mem.patch = b[:0], patch[:0]
	w.Header().Set("Content-Type", "application/json")
	// Write does not keep b (io.Writer), so b may serve the next request.
	_, _ = w.Write(b)
}

// appendReview appends the review of resp to b, and returns the patch's buffer,
// patchBuf grown, for reuse.
func appendReview(b, patchBuf []byte, resp *admission.Response) (review, patch []byte, err error) {
	if len(resp.Patches) > 0 {
		if patch, err = appendPatch(slices.Grow(patchBuf[:0], 4<<10), resp.Patches); err != nil {
			return b, patch, fmt.Errorf("encoding the patch: %w", err)
		}
	} else {
		patch = patchBuf[:0]
	}
	// Room for all of it, so that b grows once. Quoting may need more, rarely.
	size := 512 + base64.StdEncoding.EncodedLen(len(patch))
	if resp.Result != nil {
		size += len(resp.Result.Message)
	}
	for _, w := range resp.Warnings {
		size += len(w) + 8
	}
	for k, v := range resp.AuditAnnotations {
		size += len(k) + len(v) + 8
	}
	b = slices.Grow(b, size)
	b = append(b, `{"kind":"AdmissionReview","apiVersion":"admission.k8s.io/v1","response":{"uid":`...)
	b = appendJSONString(b, string(resp.UID))
	b = append(b, `,"allowed":`...)
	b = strconv.AppendBool(b, resp.Allowed)
	if resp.Result != nil {
		b = append(b, `,"status":`...)
		var err error
		if b, err = appendStatus(b, resp.Result); err != nil {
			return b, patch, err
		}
	}
	if len(patch) > 0 {
		b = append(b, `,"patch":"`...)
		b = base64.StdEncoding.AppendEncode(b, patch)
		b = append(b, `","patchType":"JSONPatch"`...)
	}
	if len(resp.AuditAnnotations) > 0 {
		b = append(b, `,"auditAnnotations":{`...)
		var few [8]string
		keys := few[:0]
		for k := range resp.AuditAnnotations {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for i, k := range keys {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendJSONString(b, k)
			b = append(b, ':')
			b = appendJSONString(b, resp.AuditAnnotations[k])
		}
		b = append(b, '}')
	}
	if len(resp.Warnings) > 0 {
		b = append(b, `,"warnings":[`...)
		for i, w := range resp.Warnings {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendJSONString(b, w)
		}
		b = append(b, ']')
	}
	return append(b, "}}"...), patch, nil
}

// appendStatus encodes the usual Status of a response (a code, a message, a reason) by
// hand, anything more with encoding/json.
func appendStatus(b []byte, s *metav1.Status) ([]byte, error) {
	if s.TypeMeta != (metav1.TypeMeta{}) || s.ListMeta.SelfLink != "" || s.ListMeta.ResourceVersion != "" ||
		s.ListMeta.Continue != "" || s.ListMeta.RemainingItemCount != nil || s.Details != nil {
		// A copy, so that only this path puts the status on the heap.
		cp := *s
		raw, err := json.Marshal(&cp)
		return append(b, raw...), err
	}
	b = append(b, `{"metadata":{}`...)
	if s.Status != "" {
		b = append(b, `,"status":`...)
		b = appendJSONString(b, s.Status)
	}
	if s.Message != "" {
		b = append(b, `,"message":`...)
		b = appendJSONString(b, s.Message)
	}
	if s.Reason != "" {
		b = append(b, `,"reason":`...)
		b = appendJSONString(b, string(s.Reason))
	}
	if s.Code != 0 {
		b = append(b, `,"code":`...)
		b = strconv.AppendInt(b, int64(s.Code), 10)
	}
	return append(b, '}'), nil
}

// appendPatch encodes ops as json.Marshal does; env vars and strings, the values of
// most operations, by hand.
func appendPatch(b []byte, ops []jsonpatch.Operation) ([]byte, error) {
	b = append(b, '[')
	for i := range ops {
		op := &ops[i]
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"op":`...)
		b = appendJSONString(b, op.Operation)
		b = append(b, `,"path":`...)
		b = appendJSONString(b, op.Path)
		switch v := op.Value.(type) {
		case nil:
			if op.Operation == "add" || op.Operation == "replace" {
				b = append(b, `,"value":null`...)
			}
		case string:
			b = append(b, `,"value":`...)
			b = appendJSONString(b, v)
		case corev1.VolumeMount:
			var err error
			if b, err = appendVolumeMount(append(b, `,"value":`...), &v); err != nil {
				return b, err
			}
		case []corev1.VolumeMount:
			b = append(b, `,"value":[`...)
			for k := range v {
				if k > 0 {
					b = append(b, ',')
				}
				var err error
				if b, err = appendVolumeMount(b, &v[k]); err != nil {
					return b, err
				}
			}
			b = append(b, ']')
		case corev1.Volume:
			var err error
			if b, err = appendVolume(append(b, `,"value":`...), &v); err != nil {
				return b, err
			}
		case []corev1.Volume:
			b = append(b, `,"value":[`...)
			for k := range v {
				if k > 0 {
					b = append(b, ',')
				}
				var err error
				if b, err = appendVolume(b, &v[k]); err != nil {
					return b, err
				}
			}
			b = append(b, ']')
		case corev1.EnvVar:
			if v.ValueFrom != nil {
				raw, err := json.Marshal(v)
				if err != nil {
					return b, err
				}
				b = append(append(b, `,"value":`...), raw...)
				break
			}
			b = append(b, `,"value":{"name":`...)
			b = appendJSONString(b, v.Name)
			if v.Value != "" {
				b = append(b, `,"value":`...)
				b = appendJSONString(b, v.Value)
			}
			b = append(b, '}')
		default:
			raw, err := json.Marshal(v)
			if err != nil {
				return b, err
			}
			b = append(append(b, `,"value":`...), raw...)
		}
		b = append(b, '}')
	}
	return append(b, ']'), nil
}

// appendVolume encodes the token volume the webhook adds by hand, other volumes with
// encoding/json.
func appendVolume(b []byte, v *corev1.Volume) ([]byte, error) {
	var t *corev1.ServiceAccountTokenProjection
	if p := v.Projected; p != nil && p.DefaultMode == nil && len(p.Sources) == 1 {
		only := p.Sources[0]
		t, only.ServiceAccountToken = only.ServiceAccountToken, nil
		other := v.VolumeSource
		other.Projected = nil
		if only != (corev1.VolumeProjection{}) || other != (corev1.VolumeSource{}) {
			t = nil
		}
	}
	if t == nil {
		cp := *v
		raw, err := json.Marshal(&cp)
		return append(b, raw...), err
	}
	b = append(b, `{"name":`...)
	b = appendJSONString(b, v.Name)
	b = append(b, `,"projected":{"sources":[{"serviceAccountToken":{`...)
	if t.Audience != "" {
		b = append(b, `"audience":`...)
		b = appendJSONString(b, t.Audience)
		b = append(b, ',')
	}
	if t.ExpirationSeconds != nil {
		b = append(b, `"expirationSeconds":`...)
		b = strconv.AppendInt(b, *t.ExpirationSeconds, 10)
		b = append(b, ',')
	}
	b = append(b, `"path":`...)
	b = appendJSONString(b, t.Path)
	return append(b, "}}]}}"...), nil
}

// appendVolumeMount encodes the mounts the webhook adds by hand, others with
// encoding/json.
func appendVolumeMount(b []byte, m *corev1.VolumeMount) ([]byte, error) {
	if m.RecursiveReadOnly != nil || m.SubPath != "" || m.MountPropagation != nil || m.SubPathExpr != "" {
		cp := *m
		raw, err := json.Marshal(&cp)
		return append(b, raw...), err
	}
	b = append(b, `{"name":`...)
	b = appendJSONString(b, m.Name)
	if m.ReadOnly {
		b = append(b, `,"readOnly":true`...)
	}
	b = append(b, `,"mountPath":`...)
	b = appendJSONString(b, m.MountPath)
	return append(b, '}'), nil
}

const hexDigits = "0123456789abcdef"

// jsonSafe holds the ASCII bytes encoding/json writes as they are.
var jsonSafe = func() (safe [utf8.RuneSelf]bool) {
	for c := range safe {
		safe[c] = c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&'
	}
	return safe
}()

// appendJSONString quotes s as encoding/json does, HTML-safe.
func appendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if jsonSafe[c] {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
		default:
			i += size
			continue
		}
		i += size
		start = i
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
