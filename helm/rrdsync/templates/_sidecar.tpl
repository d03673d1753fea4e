{{/*
Public templates for running rrdsync inside another application's pod (the OpenNMS
pod), for charts that have rrdsync as a dependency. Call them with the subchart's
context, so they see rrdsync's own values, chart and release:

  spec:
    template:
      metadata:
        annotations:
          {{- include "rrdsync.sidecar.annotations" .Subcharts.rrdsync | nindent 10 }}
      spec:
        enableServiceLinks: false
        containers:
          - name: opennms
            ...
          {{- include "rrdsync.sidecar.containers" .Subcharts.rrdsync | nindent 10 }}
        volumes:
          - name: rrd
            ...
          {{- include "rrdsync.sidecar.volumes" .Subcharts.rrdsync | nindent 10 }}

Set `standalone: false` in the subchart's values so it renders no pod of its own,
and `source.volumeName` to the application's RRD volume. The container gets liveness
and startup probes on /healthz; a readiness probe only with sidecar.readinessProbe,
because a replication backlog must never make the application NotReady.

Monitoring in this mode: `metrics.podMonitor.enabled` scrapes the container's
rrdsync-http port in the host pod (selected by `app.kubernetes.io/instance`, or
`metrics.podMonitor.selector`); the PrometheusRule and the dashboard ConfigMap work the
same as in the standalone mode. `helm test` of the parent release runs this chart's
check pod.
*/}}

{{/* The rrdsync container, as one item of a `containers:` list. */}}
{{- define "rrdsync.sidecar.containers" -}}
{{- include "rrdsync.validate" . }}
{{- include "rrdsync.container" (dict "ctx" . "readiness" .Values.sidecar.readinessProbe) | trim }}
{{- end }}

{{/* The volumes the container needs, as items of a `volumes:` list. */}}
{{- define "rrdsync.sidecar.volumes" -}}
{{- include "rrdsync.volumes" . | trim }}
{{- end }}

{{/* Pod annotations that roll the pod when rrdsync's config or Secret changes. */}}
{{- define "rrdsync.sidecar.annotations" -}}
{{- include "rrdsync.checksums" . | trim }}
{{- end }}
