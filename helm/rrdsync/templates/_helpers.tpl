{{/*
Helpers. Everything that the chart's own Deployment and the public sidecar
templates (rrdsync.sidecar.*, see _sidecar.tpl) share lives here, so both render
the same container from the same values.
*/}}

{{- define "rrdsync.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "rrdsync.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "rrdsync.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "rrdsync.selectorLabels" -}}
app.kubernetes.io/name: {{ include "rrdsync.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: {{ .Values.role }}
{{- end }}

{{- define "rrdsync.labels" -}}
helm.sh/chart: {{ include "rrdsync.chart" . }}
{{ include "rrdsync.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "rrdsync.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "rrdsync.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "rrdsync.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag | toString) }}
{{- end }}
{{- end }}

{{/* The status port: the port part of config.httpAddr ("0.0.0.0:8080", "[::]:8080"). */}}
{{- define "rrdsync.httpPort" -}}
{{- .Values.config.httpAddr | toString | splitList ":" | last | int }}
{{- end }}

{{/* A destination is remote ([user@]host:/path) unless it is an absolute local path. */}}
{{- define "rrdsync.remoteDest" -}}
{{- if and .Values.config.dest (not (hasPrefix "/" (toString .Values.config.dest))) }}true{{ end }}
{{- end }}

{{/* Whether the state dir is a PVC: state.persistence.enabled, or by role when null. */}}
{{- define "rrdsync.statePersistent" -}}
{{- $p := .Values.state.persistence.enabled }}
{{- if kindIs "invalid" $p }}
{{- if and (eq .Values.role "receiver") (not .Values.receiver.hostKeys.existingSecret) }}true{{ end }}
{{- else if $p }}true{{ end }}
{{- end }}

{{- define "rrdsync.stateClaimName" -}}
{{- default (printf "%s-state" (include "rrdsync.fullname" .)) .Values.state.persistence.existingClaim }}
{{- end }}

{{- define "rrdsync.dataClaimName" -}}
{{- default (printf "%s-data" (include "rrdsync.fullname" .)) .Values.receiver.persistence.existingClaim }}
{{- end }}

{{- define "rrdsync.sshSecretName" -}}
{{- default (printf "%s-ssh" (include "rrdsync.fullname" .)) .Values.ssh.existingSecret }}
{{- end }}

{{- define "rrdsync.authorizedKeysSecretName" -}}
{{- default (printf "%s-authorized-keys" (include "rrdsync.fullname" .)) .Values.receiver.existingSecret }}
{{- end }}

{{/* A value as the environment sees it: lists joined with commas, whole numbers without
     a decimal point or exponent (Helm reads YAML numbers as float64), booleans true/false. */}}
{{- define "rrdsync.envValue" -}}
{{- if kindIs "slice" . }}{{ join "," . }}
{{- else if kindIs "bool" . }}{{ ternary "true" "false" . }}
{{- else if or (kindIs "float64" .) (kindIs "int" .) (kindIs "int64" .) }}
{{- if eq (float64 .) (floor .) }}{{ int64 . }}{{ else }}{{ . }}{{ end }}
{{- else }}{{ . }}
{{- end }}
{{- end }}

{{/* The RRDSYNC_* variables of the role, as ConfigMap data. Empty values are left out
     (the image's default applies). */}}
{{- define "rrdsync.configData" -}}
{{- $sidecar := list "sourceDir" "dest" "sshPort" "sshKey" "knownHosts" "sshHostKeyPolicy" "include" "exclude" "settle" "maxDelay" "batchMax" "delete" "rescanInterval" "watch" "pollInterval" "bwlimit" "compress" "timeout" "httpAddr" "livenessTimeout" "maxLag" "stateDir" "runDir" "logLevel" "logFormat" "rrdcached" "rrdcachedRoot" }}
{{- $receiver := list "receiveDir" "authorizedKeys" "listenPort" "hostKeyDir" "receiverAllowDelete" "stateDir" "runDir" "logLevel" "logFormat" }}
{{- $keys := ternary $receiver $sidecar (eq .Values.role "receiver") }}
{{- range $key := $keys }}
{{- $v := get $.Values.config $key }}
{{- if not (or (kindIs "invalid" $v) (and (kindIs "string" $v) (eq $v "")) (and (kindIs "slice" $v) (empty $v))) }}
{{ printf "RRDSYNC_%s" (snakecase $key | upper) }}: {{ include "rrdsync.envValue" $v | quote }}
{{- end }}
{{- end }}
{{- end }}

{{/* Secret data of the chart-created Secret (empty when an existing Secret is used). */}}
{{- define "rrdsync.secretData" -}}
{{- if eq .Values.role "receiver" }}
{{- if not .Values.receiver.existingSecret }}
{{ .Values.receiver.secretKey }}: {{ printf "%s\n" (join "\n" .Values.receiver.authorizedKeys) | b64enc }}
{{- end }}
{{- else if and (include "rrdsync.remoteDest" .) (not .Values.ssh.existingSecret) }}
{{ .Values.ssh.secretKeys.privateKey }}: {{ printf "%s\n" (trim .Values.ssh.privateKey) | b64enc }}
{{- if .Values.ssh.knownHosts }}
{{ .Values.ssh.secretKeys.knownHosts }}: {{ printf "%s\n" (trim .Values.ssh.knownHosts) | b64enc }}
{{- end }}
{{- end }}
{{- end }}

{{/* Pod annotations that roll the pod when its configuration or Secret changes. */}}
{{- define "rrdsync.checksums" -}}
checksum/config: {{ include "rrdsync.configData" . | sha256sum }}
{{- if eq .Values.role "receiver" }}
checksum/secret: {{ printf "%s|%s|%s" (include "rrdsync.secretData" .) .Values.receiver.existingSecret .Values.receiver.hostKeys.existingSecret | sha256sum }}
{{- else if include "rrdsync.remoteDest" . }}
checksum/secret: {{ printf "%s|%s" (include "rrdsync.secretData" .) .Values.ssh.existingSecret | sha256sum }}
{{- end }}
{{- end }}

{{/* Refuse combinations the schema cannot express, with a message that says what to do. */}}
{{- define "rrdsync.validate" -}}
{{- $v := .Values }}
{{- if eq $v.role "receiver" }}
  {{- if and (not $v.receiver.existingSecret) (empty $v.receiver.authorizedKeys) }}
    {{- fail "role=receiver: set receiver.authorizedKeys (public keys of the senders) or receiver.existingSecret" }}
  {{- end }}
  {{- if not $v.receiver.hostKeys.existingSecret }}
    {{- if not (include "rrdsync.statePersistent" .) }}
      {{- fail "role=receiver: the sshd host keys must survive a reschedule (sidecars pin them in known_hosts): set receiver.hostKeys.existingSecret or leave state.persistence.enabled null/true" }}
    {{- end }}
    {{- if not (hasPrefix (printf "%s/" (trimSuffix "/" $v.config.stateDir)) $v.config.hostKeyDir) }}
      {{- fail "role=receiver: config.hostKeyDir must lie under config.stateDir (the state volume keeps the host keys) unless receiver.hostKeys.existingSecret is set" }}
    {{- end }}
  {{- end }}
  {{- if and (hasKey $v.securityContext "runAsUser") (ne (toString $v.securityContext.runAsUser) "10001") }}
    {{- fail "role=receiver: securityContext.runAsUser must be 10001 (a non-root sshd can log in only its own user, rrdsync)" }}
  {{- end }}
{{- else }}
  {{- if not $v.config.dest }}
    {{- fail "role=sidecar: config.dest is required ([user@]host:/abs/path or /abs/path)" }}
  {{- end }}
  {{- $sources := 0 }}
  {{- range $k := list "existingClaim" "hostPath" "volumeName" }}{{ if get $v.source $k }}{{ $sources = add1 $sources }}{{ end }}{{ end }}
  {{- if ne (int $sources) 1 }}
    {{- fail "role=sidecar: set exactly one of source.existingClaim, source.hostPath, source.volumeName" }}
  {{- end }}
  {{- if and $v.standalone $v.source.volumeName }}
    {{- fail "source.volumeName names a volume of another pod: use it with standalone=false and the rrdsync.sidecar.* templates; the chart's own pod needs source.existingClaim or source.hostPath" }}
  {{- end }}
  {{- if include "rrdsync.remoteDest" . }}
    {{- if and (not $v.ssh.existingSecret) (not $v.ssh.privateKey) }}
      {{- fail "an SSH destination needs a key: set ssh.existingSecret or ssh.privateKey" }}
    {{- end }}
    {{- if and (not $v.ssh.existingSecret) (not $v.ssh.knownHosts) (eq $v.config.sshHostKeyPolicy "strict") }}
      {{- fail "sshHostKeyPolicy=strict needs the destination's host key: set ssh.knownHosts (or ssh.existingSecret), or opt in to config.sshHostKeyPolicy=accept-new" }}
    {{- end }}
  {{- else if empty $v.destinationVolume }}
    {{- fail "a local destination (config.dest=/abs/path) needs destinationVolume (e.g. nfs or persistentVolumeClaim), or the copy would land in the container" }}
  {{- end }}
  {{- if and $v.config.delete (not (include "rrdsync.statePersistent" .)) }}
    {{- fail "config.delete=true needs state.persistence.enabled=true: the guard against deleting through an unmounted source keeps its record in the state dir" }}
  {{- end }}
{{- end }}
{{- end }}

{{/* Probe timing from a probe's values (enabled is ours, the rest Kubernetes'). */}}
{{- define "rrdsync.probeTiming" -}}
periodSeconds: {{ .periodSeconds }}
timeoutSeconds: {{ .timeoutSeconds }}
failureThreshold: {{ .failureThreshold }}
{{- end }}

{{/*
The rrdsync container as one list item. Its ports are named rrdsync-http/rrdsync-ssh,
since port names must be unique in a pod and the host application has its own "http". Takes (dict "ctx" <chart context> "readiness" <bool>).
*/}}
{{- define "rrdsync.container" -}}
{{- $ := .ctx }}
{{- $v := $.Values }}
{{- $receiver := eq $v.role "receiver" }}
- name: rrdsync
  image: {{ include "rrdsync.image" $ | quote }}
  imagePullPolicy: {{ $v.image.pullPolicy }}
  args: [{{ $v.role | quote }}]
  envFrom:
    - configMapRef:
        name: {{ include "rrdsync.fullname" $ }}
  {{- with $v.extraEnv }}
  env:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  ports:
  {{- if $receiver }}
    - name: rrdsync-ssh
      containerPort: {{ int $v.config.listenPort }}
      protocol: TCP
  {{- else }}
    - name: rrdsync-http
      containerPort: {{ include "rrdsync.httpPort" $ }}
      protocol: TCP
  {{- end }}
  {{- if $v.startupProbe.enabled }}
  startupProbe:
    {{- if $receiver }}
    tcpSocket:
      port: rrdsync-ssh
    {{- else }}
    httpGet:
      path: /healthz
      port: rrdsync-http
    {{- end }}
    {{- include "rrdsync.probeTiming" $v.startupProbe | nindent 4 }}
  {{- end }}
  {{- if $v.livenessProbe.enabled }}
  livenessProbe:
    {{- if $receiver }}
    tcpSocket:
      port: rrdsync-ssh
    {{- else }}
    httpGet:
      path: /healthz
      port: rrdsync-http
    {{- end }}
    {{- include "rrdsync.probeTiming" $v.livenessProbe | nindent 4 }}
  {{- end }}
  {{- if .readiness }}
  readinessProbe:
    {{- if $receiver }}
    tcpSocket:
      port: rrdsync-ssh
    {{- else }}
    httpGet:
      path: /readyz
      port: rrdsync-http
    {{- end }}
    {{- include "rrdsync.probeTiming" $v.readinessProbe | nindent 4 }}
  {{- end }}
  {{- with $v.securityContext }}
  securityContext:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with $v.resources }}
  resources:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  volumeMounts:
  {{- if $receiver }}
    - name: rrdsync-data
      mountPath: {{ $v.config.receiveDir }}
    - name: rrdsync-authorized-keys
      mountPath: {{ dir $v.config.authorizedKeys }}
      readOnly: true
    {{- if $v.receiver.hostKeys.existingSecret }}
    - name: rrdsync-host-keys
      mountPath: {{ $v.config.hostKeyDir }}
      readOnly: true
    {{- end }}
  {{- else }}
    - name: {{ default "rrdsync-source" $v.source.volumeName }}
      mountPath: {{ $v.config.sourceDir }}
      {{- with $v.source.subPath }}
      subPath: {{ . }}
      {{- end }}
      readOnly: true
    {{- if include "rrdsync.remoteDest" $ }}
    {{- if eq (dir $v.config.sshKey) (dir $v.config.knownHosts) }}
    - name: rrdsync-ssh
      mountPath: {{ dir $v.config.sshKey }}
      readOnly: true
    {{- else }}
    - name: rrdsync-ssh
      mountPath: {{ dir $v.config.sshKey }}
      readOnly: true
    {{- if include "rrdsync.knownHostsMounted" $ }}
    - name: rrdsync-known-hosts
      mountPath: {{ dir $v.config.knownHosts }}
      readOnly: true
    {{- end }}
    {{- end }}
    {{- else }}
    - name: rrdsync-dest
      mountPath: {{ $v.config.dest }}
    {{- end }}
  {{- end }}
    - name: rrdsync-state
      mountPath: {{ $v.config.stateDir }}
    - name: rrdsync-run
      mountPath: {{ $v.config.runDir }}
    - name: rrdsync-tmp
      mountPath: /tmp
  {{- with $v.extraVolumeMounts }}
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end }}

{{/* known_hosts comes from the Secret unless trust-on-first-use was chosen without one. */}}
{{- define "rrdsync.knownHostsMounted" -}}
{{- $v := .Values }}
{{- if or $v.ssh.existingSecret $v.ssh.knownHosts (eq $v.config.sshHostKeyPolicy "strict") }}true{{ end }}
{{- end }}

{{/* The items of the SSH Secret: the key, and known_hosts unless trust-on-first-use
     without a file was chosen. */}}
{{- define "rrdsync.sshItems" -}}
{{- $v := .ctx.Values }}
{{- if .key }}
- key: {{ $v.ssh.secretKeys.privateKey }}
  path: {{ base $v.config.sshKey }}
{{- end }}
{{- if and .knownHosts (include "rrdsync.knownHostsMounted" .ctx) }}
- key: {{ $v.ssh.secretKeys.knownHosts }}
  path: {{ base $v.config.knownHosts }}
{{- end }}
{{- end }}

{{/* The pod volumes for the rrdsync container, as list items. */}}
{{- define "rrdsync.volumes" -}}
{{- $v := .Values }}
{{- if eq $v.role "receiver" }}
- name: rrdsync-data
  {{- if $v.receiver.persistence.enabled }}
  persistentVolumeClaim:
    claimName: {{ include "rrdsync.dataClaimName" . }}
  {{- else }}
  emptyDir: {}
  {{- end }}
- name: rrdsync-authorized-keys
  secret:
    secretName: {{ include "rrdsync.authorizedKeysSecretName" . }}
    defaultMode: 0440
    items:
      - key: {{ $v.receiver.secretKey }}
        path: {{ base $v.config.authorizedKeys }}
{{- with $v.receiver.hostKeys.existingSecret }}
- name: rrdsync-host-keys
  secret:
    secretName: {{ . }}
    defaultMode: 0440
{{- end }}
{{- else }}
{{- if not $v.source.volumeName }}
- name: rrdsync-source
  {{- if $v.source.existingClaim }}
  persistentVolumeClaim:
    claimName: {{ $v.source.existingClaim }}
    readOnly: true
  {{- else }}
  hostPath:
    path: {{ $v.source.hostPath }}
    type: {{ $v.source.hostPathType }}
  {{- end }}
{{- end }}
{{- if include "rrdsync.remoteDest" . }}
{{- if eq (dir $v.config.sshKey) (dir $v.config.knownHosts) }}
- name: rrdsync-ssh
  secret:
    secretName: {{ include "rrdsync.sshSecretName" . }}
    defaultMode: 0440
    items:
      {{- include "rrdsync.sshItems" (dict "ctx" . "key" true "knownHosts" true) | trim | nindent 6 }}
{{- else }}
- name: rrdsync-ssh
  secret:
    secretName: {{ include "rrdsync.sshSecretName" . }}
    defaultMode: 0440
    items:
      {{- include "rrdsync.sshItems" (dict "ctx" . "key" true "knownHosts" false) | trim | nindent 6 }}
{{- if include "rrdsync.knownHostsMounted" . }}
- name: rrdsync-known-hosts
  secret:
    secretName: {{ include "rrdsync.sshSecretName" . }}
    defaultMode: 0440
    items:
      {{- include "rrdsync.sshItems" (dict "ctx" . "key" false "knownHosts" true) | trim | nindent 6 }}
{{- end }}
{{- end }}
{{- else }}
- name: rrdsync-dest
  {{- toYaml $v.destinationVolume | nindent 2 }}
{{- end }}
{{- end }}
- name: rrdsync-state
  {{- if include "rrdsync.statePersistent" . }}
  persistentVolumeClaim:
    claimName: {{ include "rrdsync.stateClaimName" . }}
  {{- else }}
  emptyDir:
    sizeLimit: {{ $v.state.emptyDirSizeLimit }}
  {{- end }}
- name: rrdsync-run
  emptyDir:
    medium: Memory
    sizeLimit: {{ $v.runDirSizeLimit }}
- name: rrdsync-tmp
  emptyDir:
    sizeLimit: {{ $v.tmpSizeLimit }}
{{- with $v.extraVolumes }}
{{ toYaml . }}
{{- end }}
{{- end }}
