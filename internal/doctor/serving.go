package doctor

import (
	"context"
	"fmt"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// serving checks the Deployment behind the webhook's Service and the Service's
// endpoints. A webhook reached by URL (dev, or a webhook outside the cluster) has
// neither: those lines are skipped with the reason.
func (d *doctor) serving(ctx context.Context, t target) {
	d.section = sectionServing
	switch {
	case t.url != "":
		d.add(Skipped, "Deployment", "", "the webhooks are reached by URL %s, not through a Service: no Deployment to check (the caBundle line above dialed the URL)", t.url)
		d.add(Skipped, "Service endpoints", "", "the webhooks are reached by URL %s: no Service endpoints to check", t.url)
		return
	case t.service == nil:
		d.add(Skipped, "Deployment", "", "no webhook configuration to read the Service from")
		d.add(Skipped, "Service endpoints", "", "no webhook configuration to read the Service from")
		return
	}
	ref := t.service
	svcName := ref.Namespace + "/" + ref.Name
	rctx, cancel := d.timeout(ctx)
	defer cancel()
	svc := &corev1.Service{}
	if err := d.c.Get(rctx, client.ObjectKey{Namespace: ref.Namespace, Name: ref.Name}, svc); err != nil {
		fix := "apply the deployment (kubectl apply -k manifests/overlays/<your overlay>)"
		d.add(Failed, "Service", fix, "Service %s, which the webhook configurations call: %v", svcName, err)
		d.add(Skipped, "Deployment", "", "without the Service, its Deployment cannot be found")
		return
	}

	deployments := &appsv1.DeploymentList{}
	if err := d.c.List(rctx, deployments, client.InNamespace(ref.Namespace)); err != nil {
		d.add(Failed, "Deployment", "run doctor with credentials that may list Deployments in "+ref.Namespace, "cannot list Deployments in %s: %v", ref.Namespace, err)
	} else {
		sel := labels.SelectorFromSet(svc.Spec.Selector)
		var found []appsv1.Deployment
		for _, dep := range deployments.Items {
			if len(svc.Spec.Selector) > 0 && sel.Matches(labels.Set(dep.Spec.Template.Labels)) {
				found = append(found, dep)
			}
		}
		switch {
		case len(found) == 0:
			d.add(Failed, "Deployment", "apply the deployment (kubectl apply -k manifests/overlays/<your overlay>)", "no Deployment in %s runs pods that Service %s selects (%s)", ref.Namespace, svcName, sel)
		default:
			for _, dep := range found {
				want := int32(1)
				if dep.Spec.Replicas != nil {
					want = *dep.Spec.Replicas
				}
				name := "Deployment " + dep.Namespace + "/" + dep.Name
				logs := fmt.Sprintf("kubectl -n %s describe deployment %s; kubectl -n %s logs deploy/%s", dep.Namespace, dep.Name, dep.Namespace, dep.Name)
				switch ready := dep.Status.ReadyReplicas; {
				case ready == 0:
					d.add(Failed, name, logs, "0 of %d replicas ready: every sandbox pod is refused (failurePolicy Fail)", want)
				case ready < want:
					d.add(Warned, name, logs, "%d of %d replicas ready", ready, want)
				default:
					d.add(Passed, name, "", "%d of %d replicas ready", ready, want)
				}
			}
		}
	}

	slices := &discoveryv1.EndpointSliceList{}
	if err := d.c.List(rctx, slices, client.InNamespace(ref.Namespace), client.MatchingLabels{discoveryv1.LabelServiceName: ref.Name}); err != nil {
		d.add(Failed, "Service endpoints", "run doctor with credentials that may list EndpointSlices in "+ref.Namespace, "cannot list the EndpointSlices of Service %s: %v", svcName, err)
		return
	}
	ready, notReady := 0, 0
	for _, s := range slices.Items {
		for _, e := range s.Endpoints {
			if e.Conditions.Ready == nil || *e.Conditions.Ready {
				ready += len(e.Addresses)
			} else {
				notReady += len(e.Addresses)
			}
		}
	}
	fix := fmt.Sprintf("kubectl -n %s get pods -l %s: the webhook pods must be Ready (their /readyz passes once the certificate is loaded and the caches synced)", ref.Namespace, labels.SelectorFromSet(svc.Spec.Selector))
	if ready == 0 {
		d.add(Failed, "Service "+svcName, fix, "no ready endpoint (%d not ready): the API server cannot reach the webhook", notReady)
		return
	}
	parts := []string{fmt.Sprintf("%d ready endpoint%s", ready, plural(ready))}
	if notReady > 0 {
		parts = append(parts, fmt.Sprintf("%d not ready", notReady))
	}
	d.add(Passed, "Service "+svcName, "", "%s", strings.Join(parts, ", "))
}
