{{- /*
PROPOSAL for charts/cri-netstatus/templates/cleanup-hook.yaml (issue 4; see docs/kube-chart/README.md).
On `helm uninstall`, a Job removes the agent's CNIConfigReady condition from every Node, so a
removed agent leaves no stale condition behind (node-problem-detector #423/#470/#1011).
It is a post-delete hook, not pre-delete: while the DaemonSet still runs, an agent would write
the condition back at its next heartbeat. After the DaemonSet is deleted, agents still inside
their termination grace period can write once more, so the Job makes a second pass after
--settle seconds (> terminationGracePeriodSeconds).
The hook has its own service account with only `list nodes` and `patch nodes/status`; hook
resources are created before the Job (weight) and deleted once it succeeded.
Needs `cri-netstatus kube-cleanup` (src/kube/cleanup.ts, wired in src/cli/main.ts).
*/ -}}
{{- $cleanup := true }}
{{- if hasKey .Values.kube "cleanupOnUninstall" }}{{ $cleanup = .Values.kube.cleanupOnUninstall }}{{ end }}
{{- if and $cleanup (include "cri-netstatus.kubeEnabled" .) }}
{{- $name := printf "%s-cleanup" (include "cri-netstatus.fullname" .) }}
apiVersion: v1
kind: ServiceAccount
metadata:
  name: {{ $name }}
  namespace: {{ include "cri-netstatus.namespace" . }}
  labels:
    {{- include "cri-netstatus.labels" . | nindent 4 }}
  annotations:
    helm.sh/hook: post-delete
    helm.sh/hook-weight: "-10"
    helm.sh/hook-delete-policy: before-hook-creation,hook-succeeded
automountServiceAccountToken: false
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: {{ $name }}
  labels:
    {{- include "cri-netstatus.labels" . | nindent 4 }}
  annotations:
    helm.sh/hook: post-delete
    helm.sh/hook-weight: "-10"
    helm.sh/hook-delete-policy: before-hook-creation,hook-succeeded
rules:
  - apiGroups: [""]
    resources: ["nodes"]
    verbs: ["list"]
  - apiGroups: [""]
    resources: ["nodes/status"]
    verbs: ["patch"]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata:
  name: {{ $name }}
  labels:
    {{- include "cri-netstatus.labels" . | nindent 4 }}
  annotations:
    helm.sh/hook: post-delete
    helm.sh/hook-weight: "-10"
    helm.sh/hook-delete-policy: before-hook-creation,hook-succeeded
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: ClusterRole
  name: {{ $name }}
subjects:
  - kind: ServiceAccount
    name: {{ $name }}
    namespace: {{ include "cri-netstatus.namespace" . }}
---
apiVersion: batch/v1
kind: Job
metadata:
  name: {{ $name }}
  namespace: {{ include "cri-netstatus.namespace" . }}
  labels:
    {{- include "cri-netstatus.labels" . | nindent 4 }}
  annotations:
    helm.sh/hook: post-delete
    helm.sh/hook-weight: "0"
    helm.sh/hook-delete-policy: before-hook-creation,hook-succeeded
spec:
  backoffLimit: 3
  activeDeadlineSeconds: 300
  ttlSecondsAfterFinished: 600
  template:
    metadata:
      labels:
        {{- include "cri-netstatus.selectorLabels" . | nindent 8 }}
        app.kubernetes.io/component: cleanup
    spec:
      serviceAccountName: {{ $name }}
      automountServiceAccountToken: true
      restartPolicy: Never
      {{- with .Values.imagePullSecrets }}
      imagePullSecrets:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      securityContext:
        runAsNonRoot: true
        runAsUser: 65532
        runAsGroup: 65532
        seccompProfile:
          type: RuntimeDefault
      {{- with .Values.nodeSelector }}
      nodeSelector:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      tolerations:
        - operator: Exists
      containers:
        - name: cleanup
          image: {{ include "cri-netstatus.image" . | quote }}
          imagePullPolicy: {{ .Values.image.pullPolicy }}
          args:
            - kube-cleanup
            - --settle
            - {{ add .Values.terminationGracePeriodSeconds 5 | quote }}
          securityContext:
            allowPrivilegeEscalation: false
            readOnlyRootFilesystem: true
            capabilities:
              drop:
                - ALL
          resources:
            requests:
              cpu: 10m
              memory: 64Mi
            limits:
              memory: 160Mi
{{- end }}
