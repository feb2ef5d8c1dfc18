{{/* Resource base name: "firefly" unless nameOverride is set. */}}
{{- define "firefly.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 52 | trimSuffix "-" -}}
{{- end -}}

{{- define "firefly.labels" -}}
app.kubernetes.io/name: {{ include "firefly.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{- define "firefly.selectorLabels" -}}
app.kubernetes.io/name: {{ include "firefly.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: controller
{{- end -}}

{{/* The image reference: repository, then the digest if set, else the tag (default appVersion). */}}
{{- define "firefly.image" -}}
{{- $d := .Values.deployment -}}
{{- if $d.imageDigest -}}
{{- printf "%s@%s" $d.image $d.imageDigest -}}
{{- else -}}
{{- printf "%s:%s" $d.image (default .Chart.AppVersion $d.imageTag) -}}
{{- end -}}
{{- end -}}

{{/* Where the controller finds its files (the Dockerfile's CMD uses the same config path). */}}
{{- define "firefly.configDir" -}}/etc/firefly{{- end -}}
{{- define "firefly.credentialsDir" -}}{{ .Values.deployment.credentialsMountPath }}{{- end -}}
{{- define "firefly.trustAnchorDir" -}}/etc/firefly/trust-anchor{{- end -}}

{{/* Checks the schema cannot express; each failure says what to change. */}}
{{- define "firefly.validate" -}}
{{- if not .Values.acceptTerms -}}
{{- fail "acceptTerms: set acceptTerms=true to consent to the terms and conditions" -}}
{{- end -}}
{{- if and .Values.deployment.enabled (not .Values.deployment.venafiClientID) -}}
{{- fail "deployment.venafiClientID is required when deployment.enabled is true: set it to the client ID of your TLS Protect Cloud service account" -}}
{{- end -}}
{{- end -}}
