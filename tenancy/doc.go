// Package tenancy keeps the one shared ClusterRoleBinding that grants every tenant
// gateway TokenReview access complete: its subjects are the gateway ServiceAccount of
// every live tenant namespace, plus any subject it did not add, written conflict-safely.
package tenancy
