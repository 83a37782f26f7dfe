{{/*
Shared names, labels and the TLS material. Object names are <fullname>[-suffix], where fullname
is the release name, followed by the chart name unless the release name already contains it,
cut to 63 characters (or fullnameOverride).
*/}}

{{- define "esa.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "esa.fullname" -}}
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

{{/* Labels of every object. */}}
{{- define "esa.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "esa.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* Labels that select the injector pods; they never change on upgrade. */}}
{{- define "esa.selectorLabels" -}}
app.kubernetes.io/name: {{ include "esa.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: injector
{{- end }}

{{- define "esa.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "esa.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "esa.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/* The Service the API server calls; the serving certificate is issued for its DNS names. */}}
{{- define "esa.serviceName" -}}
{{- include "esa.fullname" . }}
{{- end }}

{{- define "esa.dnsNames" -}}
{{- $svc := include "esa.serviceName" . }}
{{- list $svc (printf "%s.%s" $svc .Release.Namespace) (printf "%s.%s.svc" $svc .Release.Namespace) (printf "%s.%s.svc.cluster.local" $svc .Release.Namespace) | toJson }}
{{- end }}

{{/* The Secret holding tls.crt and tls.key: mounted into the injector, or (selfManaged) its own. */}}
{{- define "esa.tlsSecretName" -}}
{{- if eq .Values.tls.mode "secret" }}
{{- required "tls.secret.name is required with tls.mode secret" .Values.tls.secret.name }}
{{- else }}
{{- printf "%s-tls" (include "esa.fullname" .) }}
{{- end }}
{{- end }}

{{/* "true" or "false": whether the injector adds the refresher as a native sidecar. */}}
{{- define "esa.nativeSidecars" -}}
{{- $value := .Values.agent.nativeSidecars | toString }}
{{- if eq $value "auto" }}
{{- semverCompare ">=1.29.0-0" .Capabilities.KubeVersion.Version | toString }}
{{- else }}
{{- $value }}
{{- end }}
{{- end }}

{{/*
TLS material of tls.mode helm, as a dict of base64 strings ca.crt, tls.crt, tls.key, caBundle
and notAfter (the expiry in Unix seconds, as a decimal string). An existing Secret of this
release is reused (found with lookup) unless it lacks a key or expires within
tls.helm.renewBeforeDays; otherwise a new CA and serving certificate are generated. When they
replace an existing CA, the caBundle holds the new CA and the old one, so that injector pods
still serving the old certificate stay trusted until they load the new one.

NOTE: the generated material is kept on the root context so that the Secret, the webhook's
caBundle and the Deployment's checksum, rendered from different files, all see the same one;
generating it twice would pair a certificate with another CA. lookup returns nothing under
`helm template` and a client-side `--dry-run`, so those always show freshly generated material.
*/}}
{{- define "esa.helmTls" -}}
{{- if not (hasKey $ "esaHelmTls") }}
{{- $name := include "esa.tlsSecretName" . }}
{{- $now := now | unixEpoch | int64 }}
{{- $renewBefore := mul (int64 .Values.tls.helm.renewBeforeDays) 86400 }}
{{- $existing := lookup "v1" "Secret" .Release.Namespace $name | default dict }}
{{- $data := get $existing "data" | default dict }}
{{- $notAfter := dig "metadata" "annotations" "agent.external-secrets.io/tls-not-after" "0" $existing | int64 }}
{{- $tls := dict }}
{{- if and (get $data "ca.crt") (get $data "tls.crt") (get $data "tls.key") (gt $notAfter (add $now $renewBefore)) }}
{{- $tls = dict "ca.crt" (get $data "ca.crt") "tls.crt" (get $data "tls.crt") "tls.key" (get $data "tls.key") "notAfter" (printf "%d" $notAfter) "caBundle" (get $data "ca.crt") }}
{{- else }}
{{- $days := int .Values.tls.helm.validityDays }}
{{- $ca := genCA (printf "%s-ca" (include "esa.fullname" .)) $days }}
{{- $dnsNames := include "esa.dnsNames" . | fromJsonArray }}
{{- $cert := genSignedCert (index $dnsNames 2) nil $dnsNames $days $ca }}
{{- $bundle := printf "%s%s" $ca.Cert (get $data "ca.crt" | default "" | b64dec) }}
{{- $tls = dict "ca.crt" ($ca.Cert | b64enc) "tls.crt" ($cert.Cert | b64enc) "tls.key" ($cert.Key | b64enc) "notAfter" (printf "%d" (add $now (mul $days 86400))) "caBundle" ($bundle | b64enc) }}
{{- end }}
{{- $_ := set $ "esaHelmTls" $tls }}
{{- end }}
{{- get $ "esaHelmTls" | toJson }}
{{- end }}
