{{/* The chart's name. */}}
{{- define "ballast.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The release's full name: the prefix of every object. */}}
{{- define "ballast.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else if contains (include "ballast.name" .) .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name (include "ballast.name" .) | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}

{{- define "ballast.selectorLabels" -}}
app.kubernetes.io/name: {{ include "ballast.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "ballast.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "ballast.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "ballast.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "ballast.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "ballast.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/*
The daemon's configuration: what the chart decides (journal, Lease, listeners, files),
then the user's `config` merged over it.
*/}}
{{- define "ballast.config" -}}
{{- $aws := dict "cluster-name" .Values.clusterName }}
{{- if .Values.awsRegion }}{{ $_ := set $aws "region" .Values.awsRegion }}{{ end }}
{{- if .Values.interruptionQueue }}{{ $_ := set $aws "interruption-queue" .Values.interruptionQueue }}{{ end }}
{{- $control := dict "enabled" .Values.control.enabled "listen" (printf "0.0.0.0:%d" (int .Values.control.port)) "read-access" .Values.control.readAccess }}
{{- with .Values.control.tls.secretName }}
{{- $tls := dict "cert" "/etc/ballast/tls/tls.crt" "key" "/etc/ballast/tls/tls.key" }}
{{- if $.Values.control.tls.clientAccess }}
{{- $_ := set $tls "client-ca" "/etc/ballast/tls/ca.crt" }}
{{- $_ := set $tls "client-access" $.Values.control.tls.clientAccess }}
{{- end }}
{{- $_ := set $control "tls" $tls }}
{{- end }}
{{- if .Values.control.tokens.existingSecret }}
{{- $tokens := list }}
{{- range .Values.control.tokens.names }}
{{- $tokens = append $tokens (dict "name" . "file" (printf "/etc/ballast/tokens/%s" .) "access" $.Values.control.tokens.access) }}
{{- end }}
{{- $_ := set $control "tokens" $tokens }}
{{- end }}
{{- $config := dict
  "engine" (dict "mode" (ternary "dry-run" "enforce" .Values.dryRun))
  "policies" .Values.policies.chain
  "fargate" .Values.fargate
  "leader-election" true
  "kubernetes" (dict "leader" (dict "namespace" .Release.Namespace "lease-name" (printf "%s-leader" (include "ballast.fullname" .))) "handover" (printf "%s-handover" (include "ballast.fullname" .)))
  "aws" $aws
  "control" $control
  "admin" (dict "listen" (printf "0.0.0.0:%d" (int .Values.metrics.port)))
}}
{{- if .Values.journal.enabled }}{{ $_ := set $config "journal" "/var/lib/ballast/decisions.jsonl" }}{{ $_ := set $config "policy-state" "/var/lib/ballast/policy-state.json" }}{{ end }}
{{- toYaml (mustMergeOverwrite $config (deepCopy .Values.config)) }}
{{- end }}
