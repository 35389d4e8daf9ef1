// Package firstsync holds the tests in which ArgoCD's own application
// controller and repo-server (built from the argo-cd module by .ci/argocd)
// sync this tree, from an empty cluster, against a real control plane
// (kubetest): the tree is served by git http-backend and the pinned Helm
// charts by a Helm repository made from the vendored copies. No operator
// runs; the test plays cert-manager, external-secrets, the Prometheus
// operator, Traefik's Ingress status and the volume provisioner by setting
// the status they would set (operators_test.go), through the status
// subresource as they do, never touching what ArgoCD applied.
//
// TestFirstSync syncs the tree as it is: every Application must end Synced
// and Healthy. TestFirstSyncRegressions puts back defects the tree had
// (issue 24's K1 and K5) and checks that the sync then fails, for the reason
// ArgoCD gives.
package firstsync
