package deploy

import (
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
)

func clientgoScheme(s *runtime.Scheme) error { return clientgoscheme.AddToScheme(s) }
