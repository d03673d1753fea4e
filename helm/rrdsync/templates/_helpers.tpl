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

{{/* Labels of every object: the standard ones, then `commonLabels` (which cannot
     replace a standard one: selectors and tooling rely on them). */}}
{{- define "rrdsync.labels" -}}
{{- $std := dict "helm.sh/chart" (include "rrdsync.chart" .) "app.kubernetes.io/version" (toString .Chart.AppVersion) "app.kubernetes.io/managed-by" .Release.Service }}
{{- $all := merge $std (include "rrdsync.selectorLabels" . | fromYaml) (deepCopy (default (dict) .Values.commonLabels)) }}
{{- toYaml $all }}
{{- end }}

{{/* Labels of the pod template: every object's labels, then `podLabels`. */}}
{{- define "rrdsync.podLabels" -}}
{{- toYaml (merge (include "rrdsync.labels" . | fromYaml) (deepCopy (default (dict) .Values.podLabels))) }}
{{- end }}

{{/* An object's `annotations:` block: `commonAnnotations`, then the object's own, which
     win. Renders nothing when both are empty. Takes (dict "ctx" $ "extra" <map or nil>). */}}
{{- define "rrdsync.annotations" -}}
{{- $a := merge (deepCopy (default (dict) .extra)) (deepCopy (default (dict) .ctx.Values.commonAnnotations)) }}
{{- if $a }}
{{- printf "annotations:\n%s" (toYaml $a | indent 2) }}
{{- end }}
{{- end }}

{{- define "rrdsync.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "rrdsync.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* registry/repository:tag or registry/repository@digest; `global.imageRegistry`
     wins over `image.registry` (one mirror for every chart of a release). */}}
{{- define "rrdsync.image" -}}
{{- $registry := default .Values.image.registry (get (default (dict) .Values.global) "imageRegistry") }}
{{- $repo := .Values.image.repository }}
{{- if $registry }}{{ $repo = printf "%s/%s" (trimSuffix "/" $registry) $repo }}{{ end }}
{{- if .Values.image.digest }}
{{- printf "%s@%s" $repo .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" $repo (default .Chart.AppVersion .Values.image.tag | toString) }}
{{- end }}
{{- end }}

{{/* The status port: the port part of config.httpAddr ("0.0.0.0:8080", "[::]:8080"). */}}
{{- define "rrdsync.httpPort" -}}
{{- .Values.config.httpAddr | toString | splitList ":" | last | int }}
{{- end }}

{{/*
The destinations, as a JSON list of {entry, label, remote, port, path, volume, index}:
from `destinations` (strings as RRDSYNC_DEST takes them, or maps {host, user, port,
path, volume}) or else from `config.dest` (one entry, or several comma-separated).
`entry` is the RRDSYNC_DEST form, `label` the entry minus any user (the engine's label,
unique per destination), `port` the destination's own port (0: `config.sshPort`),
`path` and `volume` only for local destinations.
*/}}
{{- define "rrdsync.destinations" -}}
{{- $v := .Values }}
{{- $items := default (list) $v.destinations }}
{{- if and (empty $items) $v.config.dest }}
  {{- range splitList "," (toString $v.config.dest) }}
    {{- $items = append $items (trim .) }}
  {{- end }}
{{- end }}
{{- $out := list }}
{{- range $i, $d := $items }}
  {{- $entry := "" }}{{- $port := 0 }}{{- $portText := "" }}{{- $path := "" }}{{- $volume := dict }}{{- $remote := true }}
  {{- if kindIs "string" $d }}
    {{- $entry = $d }}
    {{- if hasPrefix "/" $d }}
      {{- $remote = false }}{{- $path = $d }}
    {{- else if hasPrefix "ssh://" $d }}
      {{- $p := regexReplaceAll `^ssh://([^@/]*@)?(\[[^\]]*\]|[^:/\[]*)(:([0-9]*))?/.*$` $d "${4}" }}
      {{- if ne $p $d }}{{- $portText = $p }}{{- $port = atoi $p }}{{- end }}
    {{- end }}
  {{- else if $d.host }}
    {{- $host := ternary (printf "[%s]" $d.host) $d.host (contains ":" $d.host) }}
    {{- $user := ternary (printf "%s@" (toString $d.user)) "" (not (empty $d.user)) }}
    {{- if $d.port }}
      {{- $port = int $d.port }}{{- $portText = toString $port }}
      {{- $entry = printf "ssh://%s%s:%d%s" $user $host $port $d.path }}
    {{- else }}
      {{- $entry = printf "%s%s:%s" $user $host $d.path }}
    {{- end }}
  {{- else }}
    {{- $remote = false }}{{- $entry = $d.path }}{{- $path = $d.path }}
    {{- $volume = default (dict) $d.volume }}
  {{- end }}
  {{- $label := regexReplaceAll `^(ssh://)?[^@/:\[]*@` $entry "${1}" }}
  {{- $out = append $out (dict "entry" $entry "label" $label "remote" $remote "port" $port "portText" $portText "path" $path "volume" $volume "index" $i) }}
{{- end }}
{{- toJson $out }}
{{- end }}

{{/* RRDSYNC_DEST: the destinations, comma-separated. */}}
{{- define "rrdsync.destValue" -}}
{{- $entries := list }}
{{- range include "rrdsync.destinations" . | fromJsonArray }}{{ $entries = append $entries .entry }}{{ end }}
{{- join "," $entries }}
{{- end }}

{{/* "true" when any destination is reached over SSH (then the key Secret is needed). */}}
{{- define "rrdsync.remoteDest" -}}
{{- range include "rrdsync.destinations" . | fromJsonArray }}{{ if .remote }}true{{ end }}{{ end }}
{{- end }}

{{/* The SSH ports the sidecar connects to, as a JSON list (config.sshPort when none). */}}
{{- define "rrdsync.destPorts" -}}
{{- $ports := list }}
{{- range include "rrdsync.destinations" . | fromJsonArray }}
  {{- if .remote }}{{ $ports = append $ports (int (default $.Values.config.sshPort .port)) }}{{ end }}
{{- end }}
{{- toJson (default (list (int .Values.config.sshPort)) (uniq $ports)) }}
{{- end }}

{{/* The local destinations' volumes, as JSON list items {name, path, source}: a map
     entry's own `volume`, else `destinationVolume` (for one local destination only;
     rrdsync.validate refuses more). */}}
{{- define "rrdsync.destVolumes" -}}
{{- $out := list }}
{{- range include "rrdsync.destinations" . | fromJsonArray }}
  {{- if not .remote }}
    {{- if .volume }}
      {{- $out = append $out (dict "name" (printf "rrdsync-dest-%d" (int .index)) "path" .path "source" .volume) }}
    {{- else }}
      {{- $out = append $out (dict "name" "rrdsync-dest" "path" .path "source" $.Values.destinationVolume) }}
    {{- end }}
  {{- end }}
{{- end }}
{{- toJson $out }}
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
{{- if eq $key "dest" }}{{ $v = include "rrdsync.destValue" $ }}{{ end }}
{{- if not (or (kindIs "invalid" $v) (and (kindIs "string" $v) (eq $v "")) (and (kindIs "slice" $v) (empty $v))) }}
{{ printf "RRDSYNC_%s" (snakecase $key | upper) }}: {{ include "rrdsync.envValue" $v | quote }}
{{- end }}
{{- end }}
{{- end }}

{{/* The receiver's authorized_keys: the plain keys (root: RRDSYNC_RECEIVE_DIR), then one
     `dir=NAME <key>` line per client (confined to RRDSYNC_RECEIVE_DIR/NAME). */}}
{{- define "rrdsync.authorizedKeysFile" -}}
{{- $lines := list }}
{{- range .Values.receiver.authorizedKeys }}{{ $lines = append $lines (trim .) }}{{ end }}
{{- range .Values.receiver.clients }}{{ $lines = append $lines (printf "dir=%s %s" .name (trim .key)) }}{{ end }}
{{- printf "%s\n" (join "\n" $lines) }}
{{- end }}

{{/* Secret data of the chart-created Secret (empty when an existing Secret is used). */}}
{{- define "rrdsync.secretData" -}}
{{- if eq .Values.role "receiver" }}
{{- if not .Values.receiver.existingSecret }}
{{ .Values.receiver.secretKey }}: {{ include "rrdsync.authorizedKeysFile" . | b64enc }}
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
  {{- if and (not $v.receiver.existingSecret) (empty $v.receiver.authorizedKeys) (empty $v.receiver.clients) }}
    {{- fail "role=receiver: set receiver.authorizedKeys (public keys of the senders), receiver.clients or receiver.existingSecret" }}
  {{- end }}
  {{- $m := $v.metrics }}
  {{- if or $m.serviceMonitor.enabled $m.podMonitor.enabled $m.prometheusRule.enabled $m.grafanaDashboard.enabled }}
    {{- fail "role=receiver exports no metrics (it is an sshd): leave metrics.serviceMonitor, podMonitor, prometheusRule and grafanaDashboard off; enable them in the sidecars' releases" }}
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
  {{- if and $v.destinations $v.config.dest }}
    {{- fail "set either destinations (a list) or config.dest, not both" }}
  {{- end }}
  {{- $dests := include "rrdsync.destinations" . | fromJsonArray }}
  {{- if not $dests }}
    {{- fail "role=sidecar: a destination is required: destinations (a list) or config.dest ([user@]host:/abs/path, ssh://[user@]host[:port]/abs/path or /abs/path)" }}
  {{- end }}
  {{- $seen := dict }}
  {{- $shared := list }}
  {{- range $dests }}
    {{- if hasKey $seen .label }}
      {{- fail (printf "destination %q is listed twice (user@ aside): each destination once" .label) }}
    {{- end }}
    {{- $_ := set $seen .label true }}
    {{- if and (hasPrefix "ssh://" .entry) (not (regexMatch `^ssh://([^@/]*@)?(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._][A-Za-z0-9._-]*)(:[0-9]+)?/` .entry)) }}
      {{- fail (printf "destination %q: expected ssh://[user@]host[:port]/abs/path" .entry) }}
    {{- end }}
    {{- if and .portText (or (lt (int .port) 1) (gt (int .port) 65535)) }}
      {{- fail (printf "destination %q: the port must be 1-65535" .entry) }}
    {{- end }}
    {{- if and (not .remote) (not .volume) }}{{ $shared = append $shared .entry }}{{ end }}
  {{- end }}
  {{- if gt (len $shared) 1 }}
    {{- fail (printf "local destinations %s: destinationVolume serves one local destination; give each its own volume as {path: /abs/path, volume: {...}} in destinations" (join ", " $shared)) }}
  {{- end }}
  {{- if and $shared (empty $v.destinationVolume) }}
    {{- fail (printf "a local destination (%s) needs destinationVolume (e.g. nfs or persistentVolumeClaim) or, in destinations, {path: ..., volume: {...}}; or the copy would land in the container" (first $shared)) }}
  {{- end }}
  {{- $sm := $v.metrics.serviceMonitor }}
  {{- if and $sm.enabled (not (and $v.standalone $v.service.enabled)) }}
    {{- fail "metrics.serviceMonitor scrapes this chart's own Service (standalone=true, service.enabled=true); inside another application's pod use metrics.podMonitor" }}
  {{- end }}
  {{- if and $sm.enabled $v.metrics.podMonitor.enabled }}
    {{- fail "metrics.serviceMonitor and metrics.podMonitor would scrape the same pod twice: enable one" }}
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
since port names must be unique in a pod and the host application has its own "http".
Takes (dict "ctx" <chart context> "readiness" <bool> "check" <bool>). With "check" it is
the `helm test` container: `rrdsync check` with the same configuration, mounts and
securityContext, and no ports or probes.
*/}}
{{- define "rrdsync.container" -}}
{{- $ := .ctx }}
{{- $v := $.Values }}
{{- $receiver := eq $v.role "receiver" }}
{{- $check := .check }}
- name: {{ ternary "rrdsync-check" "rrdsync" (not (not $check)) }}
  image: {{ include "rrdsync.image" $ | quote }}
  imagePullPolicy: {{ $v.image.pullPolicy }}
  args: [{{ ternary "check" $v.role (not (not $check)) | quote }}]
  envFrom:
    - configMapRef:
        name: {{ include "rrdsync.fullname" $ }}
    {{- with $v.extraEnvFrom }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  {{- with $v.extraEnv }}
  env:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- if not $check }}
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
  {{- end }}
  {{- $sc := deepCopy (default (dict) $v.securityContext) }}
  {{- if $check }}
  {{- /* The test pod is non-root with a read-only root, whatever securityContext says. */}}
  {{- $sc = merge (dict "runAsNonRoot" true "readOnlyRootFilesystem" true "allowPrivilegeEscalation" false) $sc }}
  {{- end }}
  {{- with $sc }}
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
      {{- if not $check }}
      subPath: {{ . }}
      {{- end }}
      {{- end }}
      readOnly: true
    {{- if include "rrdsync.remoteDest" $ }}
    - name: rrdsync-ssh
      mountPath: {{ dir $v.config.sshKey }}
      readOnly: true
    {{- if and (ne (dir $v.config.sshKey) (dir $v.config.knownHosts)) (include "rrdsync.knownHostsMounted" $) }}
    - name: rrdsync-known-hosts
      mountPath: {{ dir $v.config.knownHosts }}
      readOnly: true
    {{- end }}
    {{- end }}
    {{- range include "rrdsync.destVolumes" $ | fromJsonArray }}
    - name: {{ .name }}
      mountPath: {{ .path }}
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
{{- include "rrdsync.podVolumes" (dict "ctx" . "check" false) }}
{{- end }}

{{/*
The volumes of the rrdsync pod or of the `helm test` pod ("check": true). The test pod
gets the same names, but an empty directory as the source (`rrdsync check` needs the
directory to exist, nothing in it; the real source may be a ReadWriteOnce volume in use,
or a volume of another pod) and a fresh state dir (the release's may be a ReadWriteOnce
PVC in use by the running pod). Takes (dict "ctx" <chart context> "check" <bool>).
*/}}
{{- define "rrdsync.podVolumes" -}}
{{- $ := .ctx }}
{{- $check := .check }}
{{- $v := $.Values }}
{{- if eq $v.role "receiver" }}
- name: rrdsync-data
  {{- if $v.receiver.persistence.enabled }}
  persistentVolumeClaim:
    claimName: {{ include "rrdsync.dataClaimName" $ }}
  {{- else }}
  emptyDir: {}
  {{- end }}
- name: rrdsync-authorized-keys
  secret:
    secretName: {{ include "rrdsync.authorizedKeysSecretName" $ }}
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
{{- if $check }}
- name: {{ default "rrdsync-source" $v.source.volumeName }}
  emptyDir:
    sizeLimit: 1Mi
{{- else if not $v.source.volumeName }}
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
{{- if include "rrdsync.remoteDest" $ }}
{{- if eq (dir $v.config.sshKey) (dir $v.config.knownHosts) }}
- name: rrdsync-ssh
  secret:
    secretName: {{ include "rrdsync.sshSecretName" $ }}
    defaultMode: 0440
    items:
      {{- include "rrdsync.sshItems" (dict "ctx" $ "key" true "knownHosts" true) | trim | nindent 6 }}
{{- else }}
- name: rrdsync-ssh
  secret:
    secretName: {{ include "rrdsync.sshSecretName" $ }}
    defaultMode: 0440
    items:
      {{- include "rrdsync.sshItems" (dict "ctx" $ "key" true "knownHosts" false) | trim | nindent 6 }}
{{- if include "rrdsync.knownHostsMounted" $ }}
- name: rrdsync-known-hosts
  secret:
    secretName: {{ include "rrdsync.sshSecretName" $ }}
    defaultMode: 0440
    items:
      {{- include "rrdsync.sshItems" (dict "ctx" $ "key" false "knownHosts" true) | trim | nindent 6 }}
{{- end }}
{{- end }}
{{- end }}
{{- range include "rrdsync.destVolumes" $ | fromJsonArray }}
- name: {{ .name }}
  {{- toYaml .source | nindent 2 }}
{{- end }}
{{- end }}
- name: rrdsync-state
  {{- if and (include "rrdsync.statePersistent" $) (not $check) }}
  persistentVolumeClaim:
    claimName: {{ include "rrdsync.stateClaimName" $ }}
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

{{/* The `job` label of scraped targets: `metrics.job` for the ServiceMonitor and the
     PodMonitor alike, so the alert rules' job selectors match in both modes (the
     Operator's own default would be the Service's or the PodMonitor's name). */}}
{{- define "rrdsync.jobRelabeling" -}}
- action: replace
  targetLabel: job
  replacement: {{ .Values.metrics.job | quote }}
{{- end }}
