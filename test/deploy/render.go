package deploy

import (
	"fmt"
	"path/filepath"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"

	"github.com/sandbox-webhook/sandbox-webhook/test/envtestutil"
)

// Render runs kustomize over a folder under manifests/ (such as "overlays/cert-manager"),
// as `kubectl apply -k` would, and returns the objects it renders.
func Render(dir string) ([]*unstructured.Unstructured, error) {
	k := krusty.MakeKustomizer(krusty.MakeDefaultOptions())
	rm, err := k.Run(filesys.MakeFsOnDisk(), filepath.Join(envtestutil.RepoRoot(), "manifests", dir))
	if err != nil {
		return nil, fmt.Errorf("kustomize build manifests/%s: %w", dir, err)
	}
	var objs []*unstructured.Unstructured
	for _, r := range rm.Resources() {
		// Through JSON, so that numbers are int64 as the API machinery expects.
		data, err := r.MarshalJSON()
		if err != nil {
			return nil, err
		}
		o := &unstructured.Unstructured{}
		if err := o.UnmarshalJSON(data); err != nil {
			return nil, err
		}
		objs = append(objs, o)
	}
	return objs, nil
}
