{{/* Names: everything is "<release>-ragbot-<part>" unless the release already says ragbot. */}}
{{- define "ragbot.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 50 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "ragbot.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{/* Selector labels of one part: pass (dict "root" $ "component" "front-door"). */}}
{{- define "ragbot.selector" -}}
app.kubernetes.io/name: {{ .root.Chart.Name }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "ragbot.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "ragbot.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "ragbot.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{- define "ragbot.secretName" -}}
{{- default (printf "%s-secrets" (include "ragbot.fullname" .)) .Values.existingSecret -}}
{{- end -}}

{{- define "ragbot.redisUrl" -}}
{{- if .Values.redis.enabled -}}
{{- printf "redis://%s-redis:6379/0" (include "ragbot.fullname" .) -}}
{{- else -}}
{{- required "externalRedis.url is required when redis.enabled is false" .Values.externalRedis.url -}}
{{- end -}}
{{- end -}}

{{- define "ragbot.qdrantUrl" -}}
{{- if .Values.qdrant.enabled -}}
{{- printf "http://%s-qdrant:6333" (include "ragbot.fullname" .) -}}
{{- else -}}
{{- required "externalQdrant.url is required when qdrant.enabled is false" .Values.externalQdrant.url -}}
{{- end -}}
{{- end -}}

{{/* Rolled on change: a pod template annotated with what its configuration hashes to. */}}
{{- define "ragbot.checksums" -}}
checksum/config: {{ include (print .Template.BasePath "/configmap.yaml") . | sha256sum }}
checksum/secret: {{ include (print .Template.BasePath "/secret.yaml") . | sha256sum }}
{{- end -}}

{{/* The pod spec every ragbot process shares; pass (dict "root" $ "args" (list ...) ...). */}}
{{- define "ragbot.podSpec" -}}
{{- $root := .root -}}
serviceAccountName: {{ include "ragbot.serviceAccountName" $root }}
{{- with $root.Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
securityContext:
  {{- toYaml $root.Values.podSecurityContext | nindent 2 }}
{{- with (.nodeSelector | default $root.Values.nodeSelector) }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with (.tolerations | default $root.Values.tolerations) }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $root.Values.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
containers:
  - name: {{ .name }}
    image: {{ include "ragbot.image" $root }}
    imagePullPolicy: {{ $root.Values.image.pullPolicy }}
    args:
      {{- toYaml .args | nindent 6 }}
    envFrom:
      - configMapRef:
          name: {{ include "ragbot.fullname" $root }}-config
      - secretRef:
          name: {{ include "ragbot.secretName" $root }}
    securityContext:
      {{- toYaml $root.Values.securityContext | nindent 6 }}
    resources:
      {{- toYaml .resources | nindent 6 }}
    {{- with .ports }}
    ports:
      {{- toYaml . | nindent 6 }}
    {{- end }}
    {{- with .probes }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
    volumeMounts:
      - name: data
        mountPath: /var/lib/ragbot
      - name: tmp
        mountPath: /tmp
      {{- if $root.Values.filesSecret }}
      - name: files
        mountPath: /etc/ragbot/files
        readOnly: true
      {{- end }}
volumes:
  - name: data
    emptyDir: {}
  - name: tmp
    emptyDir: {}
  {{- if $root.Values.filesSecret }}
  - name: files
    secret:
      secretName: {{ $root.Values.filesSecret }}
  {{- end }}
{{- end -}}
