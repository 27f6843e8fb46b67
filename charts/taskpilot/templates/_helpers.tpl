{{/* The prefix of every object's name: the release name, with "taskpilot" when it lacks it. */}}
{{- define "taskpilot.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* The operator deployment's name (--deployment): the release name unless set. */}}
{{- define "taskpilot.deploymentName" -}}
{{- default .Release.Name .Values.deploymentName -}}
{{- end -}}

{{/* Labels of every object. */}}
{{- define "taskpilot.labels" -}}
app.kubernetes.io/name: taskpilot
app.kubernetes.io/part-of: taskpilot
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | quote }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{/* The operator's pods: the deployment name is the instance, as in config/manager. */}}
{{- define "taskpilot.selector" -}}
app.kubernetes.io/name: taskpilot
app.kubernetes.io/component: manager
app.kubernetes.io/instance: {{ include "taskpilot.deploymentName" . }}
{{- end -}}

{{- define "taskpilot.serviceAccountName" -}}
{{ include "taskpilot.fullname" . }}-controller-manager
{{- end -}}

{{- define "taskpilot.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}

{{/* The pod's security context: non-root, the distroless nonroot user, RuntimeDefault seccomp. */}}
{{- define "taskpilot.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{- define "taskpilot.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
capabilities:
  drop: ["ALL"]
{{- end -}}
