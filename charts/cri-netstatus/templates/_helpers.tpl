{{/* Chart name, truncated to a valid label value. */}}
{{- define "cri-netstatus.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Full resource name: <release>-<name>, or <release> when it already contains the name. */}}
{{- define "cri-netstatus.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := include "cri-netstatus.name" . -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "cri-netstatus.namespace" -}}
{{- default .Release.Namespace .Values.namespaceOverride -}}
{{- end -}}

{{- define "cri-netstatus.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Immutable selector labels. */}}
{{- define "cri-netstatus.selectorLabels" -}}
app.kubernetes.io/name: {{ include "cri-netstatus.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* Labels shared by every object and the pod template (no helm.sh/chart: a chart-only bump must
not roll every node). */}}
{{- define "cri-netstatus.baseLabels" -}}
{{ include "cri-netstatus.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/component: node-agent
app.kubernetes.io/part-of: cri-netstatus
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* Labels of every object's metadata. */}}
{{- define "cri-netstatus.labels" -}}
helm.sh/chart: {{ include "cri-netstatus.chart" . }}
{{ include "cri-netstatus.baseLabels" . }}
{{- end -}}

{{- define "cri-netstatus.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "cri-netstatus.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* Whether the agent talks to the Kubernetes API at all. */}}
{{- define "cri-netstatus.kubeEnabled" -}}
{{- if ne .Values.kube.mode "off" -}}true{{- end -}}
{{- end -}}

{{/* Whether /metrics is behind TokenReview + SubjectAccessReview (HTTPS). */}}
{{- define "cri-netstatus.metricsAuth" -}}
{{- if eq .Values.metrics.auth.mode "kubernetes" -}}true{{- end -}}
{{- end -}}

{{/* Whether the pod needs a service-account token: the Node reporter, or the metrics authorizer. */}}
{{- define "cri-netstatus.needsToken" -}}
{{- if or (include "cri-netstatus.kubeEnabled" .) (include "cri-netstatus.metricsAuth" .) -}}true{{- end -}}
{{- end -}}

{{/* A probe from values, as YAML; an httpGet probe is switched to HTTPS with metrics auth on. */}}
{{- define "cri-netstatus.probe" -}}
{{- $root := index . 0 -}}
{{- $probe := deepCopy (index . 1) -}}
{{- if and $probe (include "cri-netstatus.metricsAuth" $root) $probe.httpGet -}}
{{- $_ := set $probe.httpGet "scheme" "HTTPS" -}}
{{- end -}}
{{- if $probe -}}{{- toYaml $probe -}}{{- end -}}
{{- end -}}

{{- define "cri-netstatus.scraperName" -}}
{{- printf "%s-metrics-scraper" (include "cri-netstatus.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- define "cri-netstatus.readerName" -}}
{{- printf "%s-metrics-reader" (include "cri-netstatus.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "cri-netstatus.image" -}}
{{- $tag := default .Chart.AppVersion .Values.image.tag | toString -}}
{{- $repo := .Values.image.repository -}}
{{- if .Values.image.registry -}}
{{- $repo = printf "%s/%s" .Values.image.registry .Values.image.repository -}}
{{- end -}}
{{- if .Values.image.digest -}}
{{- printf "%s:%s@%s" $repo $tag .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" $repo $tag -}}
{{- end -}}
{{- end -}}

{{/* The conf dir's parent on the host (mounted), and where the conf dir appears in the container. */}}
{{- define "cri-netstatus.confParent" -}}
{{- dir (clean .Values.hostPaths.cniConfDir) -}}
{{- end -}}
{{- define "cri-netstatus.containerConfDir" -}}
{{- printf "/host%s" (clean .Values.hostPaths.cniConfDir) -}}
{{- end -}}
{{- define "cri-netstatus.socketPath" -}}
{{- printf "%s/cri.sock" (clean .Values.hostPaths.socketDir) -}}
{{- end -}}

{{/* host:port for --metrics-address; IPv6 hosts in brackets. */}}
{{- define "cri-netstatus.metricsAddress" -}}
{{- $host := .Values.metrics.host | toString -}}
{{- if contains ":" $host -}}
{{- printf "[%s]:%d" $host (.Values.metrics.port | int) -}}
{{- else -}}
{{- printf "%s:%d" $host (.Values.metrics.port | int) -}}
{{- end -}}
{{- end -}}

{{/* Whether the prometheus-operator API is there (or the check is skipped). */}}
{{- define "cri-netstatus.monitoringApi" -}}
{{- if or .Values.prometheus.skipCapabilitiesCheck (.Capabilities.APIVersions.Has "monitoring.coreos.com/v1") -}}true{{- end -}}
{{- end -}}
{{- define "cri-netstatus.renderPodMonitor" -}}
{{- if and .Values.prometheus.podMonitor.enabled (include "cri-netstatus.monitoringApi" .) -}}true{{- end -}}
{{- end -}}
{{- define "cri-netstatus.renderServiceMonitor" -}}
{{- if and .Values.prometheus.serviceMonitor.enabled (include "cri-netstatus.monitoringApi" .) -}}true{{- end -}}
{{- end -}}
{{- define "cri-netstatus.renderPrometheusRule" -}}
{{- if and .Values.prometheus.prometheusRule.enabled (include "cri-netstatus.monitoringApi" .) -}}true{{- end -}}
{{- end -}}

{{/* The upstream runtime socket (unix:///path or /path) split into host dir and file name. */}}
{{- define "cri-netstatus.upstreamPath" -}}
{{- clean (trimPrefix "unix://" .Values.agent.runtimeEndpoint) -}}
{{- end -}}

{{/* Cross-field checks the JSON schema cannot express; each fails with the key to fix. */}}
{{- define "cri-netstatus.validate" -}}
{{- $conf := clean .Values.hostPaths.cniConfDir -}}
{{- if eq (dir $conf) "/" -}}
{{- fail (printf "hostPaths.cniConfDir %q: the chart mounts the conf dir's parent, and the parent of %s is the host's root; use a dir at least two levels deep such as /etc/cni/net.d" .Values.hostPaths.cniConfDir $conf) -}}
{{- end -}}
{{- range .Values.hostPaths.cniBinDirs -}}
{{- if or (eq (clean .) (clean $.Values.hostPaths.socketDir)) (eq (clean .) (dir $conf)) (eq (clean .) $conf) -}}
{{- fail (printf "hostPaths.cniBinDirs: %q collides with hostPaths.cniConfDir or hostPaths.socketDir" .) -}}
{{- end -}}
{{- end -}}
{{- $host := .Values.metrics.host | toString -}}
{{- if or (hasPrefix "127." $host) (eq $host "localhost") (eq $host "::1") -}}
{{- fail (printf "metrics.host %q is a loopback address: kubelet probes and Prometheus reach the agent on the node's address; use 0.0.0.0, :: or a node address" $host) -}}
{{- end -}}
{{- if and .Values.kube.admissionPolicy.enabled (eq .Values.kube.mode "off") -}}
{{- fail "kube.admissionPolicy.enabled needs kube.mode auto or on: with kube.mode=off the agent makes no API calls to restrict" -}}
{{- end -}}
{{- if and .Values.kube.admissionPolicy.enabled (not (.Capabilities.APIVersions.Has "admissionregistration.k8s.io/v1/ValidatingAdmissionPolicy")) (not (semverCompare ">=1.30.0-0" .Capabilities.KubeVersion.Version)) -}}
{{- fail (printf "kube.admissionPolicy.enabled needs Kubernetes 1.30+ (admissionregistration.k8s.io/v1 ValidatingAdmissionPolicy); this cluster is %s" .Capabilities.KubeVersion.Version) -}}
{{- end -}}
{{- if and .Values.metrics.auth.tlsSecretName (not (include "cri-netstatus.metricsAuth" .)) -}}
{{- fail "metrics.auth.tlsSecretName is used only with metrics.auth.mode=kubernetes (the endpoint serves plain HTTP otherwise)" -}}
{{- end -}}
{{- if and (eq .Values.kube.mode "on") (not .Values.rbac.create) (not .Values.serviceAccount.name) -}}
{{- fail "kube.mode=on with rbac.create=false: set serviceAccount.name to an account you have bound to get nodes, patch nodes/status and create/patch events" -}}
{{- end -}}
{{- end -}}
