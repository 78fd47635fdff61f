{{- /*
PROPOSAL to replace charts/cri-netstatus/templates/rbac.yaml (issue 4; see docs/kube-chart/README.md).
Differences from the current chart: Events are allowed only in the namespace the agent writes
them to ("default", where the kubelet records Node events) through a Role, instead of in every
namespace through the ClusterRole; and events.k8s.io is dropped, because the agent writes core/v1
Events only.
*/ -}}
{{- if and .Values.rbac.create (include "cri-netstatus.kubeEnabled" .) }}
# The agent reads its Node (the condition's transition time survives restarts) and patches the
# Node's status (one condition, strategic merge). Nothing else cluster-wide.
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: {{ include "cri-netstatus.fullname" . }}
  labels:
    {{- include "cri-netstatus.labels" . | nindent 4 }}
rules:
  - apiGroups: [""]
    resources: ["nodes"]
    verbs: ["get"]
  - apiGroups: [""]
    resources: ["nodes/status"]
    verbs: ["patch"]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata:
  name: {{ include "cri-netstatus.fullname" . }}
  labels:
    {{- include "cri-netstatus.labels" . | nindent 4 }}
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: ClusterRole
  name: {{ include "cri-netstatus.fullname" . }}
subjects:
  - kind: ServiceAccount
    name: {{ include "cri-netstatus.serviceAccountName" . }}
    namespace: {{ include "cri-netstatus.namespace" . }}
---
# Events about Nodes (cluster-scoped) live in "default", as the kubelet's do: create a new one,
# patch count/lastTimestamp of a repeated one.
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata:
  name: {{ include "cri-netstatus.fullname" . }}-events
  namespace: default
  labels:
    {{- include "cri-netstatus.labels" . | nindent 4 }}
rules:
  - apiGroups: [""]
    resources: ["events"]
    verbs: ["create", "patch"]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata:
  name: {{ include "cri-netstatus.fullname" . }}-events
  namespace: default
  labels:
    {{- include "cri-netstatus.labels" . | nindent 4 }}
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: Role
  name: {{ include "cri-netstatus.fullname" . }}-events
subjects:
  - kind: ServiceAccount
    name: {{ include "cri-netstatus.serviceAccountName" . }}
    namespace: {{ include "cri-netstatus.namespace" . }}
{{- end }}
