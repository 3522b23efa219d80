{{- define "oc.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "oc.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else if contains (include "oc.name" .) .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name (include "oc.name" .) | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}

{{- define "oc.selectorLabels" -}}
app.kubernetes.io/name: {{ include "oc.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "oc.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "oc.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/component: controller
app.kubernetes.io/part-of: orderflow
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "oc.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "oc.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- /*
This controller's Kopf peering object: the same name in every release, so that two releases that
watch the same objects pause each other instead of both reconciling, and another name than the
other controller's, whose replicas must not pause this one's.
*/ -}}
{{- define "oc.peeringName" -}}
order-controller-peering
{{- end }}

{{- /*
"true" when the CRD named .name does not exist or belongs to this release (.root): Helm refuses to
take over an object that another release made, or kubectl. Under `helm template` lookup finds
nothing, so the CRD is rendered.
*/ -}}
{{- define "oc.mayInstallCRD" -}}
{{- $crd := lookup "apiextensions.k8s.io/v1" "CustomResourceDefinition" "" .name -}}
{{- if not $crd -}}
true
{{- else -}}
{{- $annotations := $crd.metadata.annotations | default dict -}}
{{- if and (eq (get $annotations "meta.helm.sh/release-name") .root.Release.Name) (eq (get $annotations "meta.helm.sh/release-namespace") .root.Release.Namespace) -}}
true
{{- end -}}
{{- end -}}
{{- end }}

{{- /*
The image: repository@digest when image.digest is set (a tag can be moved, a digest cannot), else
repository:tag, the tag defaulting to the chart's appVersion.
*/ -}}
{{- define "oc.image" -}}
{{- if .Values.image.digest -}}
{{ .Values.image.repository }}@{{ .Values.image.digest }}
{{- else -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}
{{- end }}

{{- /*
Labels of this chart's CRD (templates/crd.yaml, which `orderflow crds` generates). The release's
labels without the selector's meaning: the CRD outlives the release (kept on uninstall) and serves
every release and person that uses its kind.
*/ -}}
{{- define "oc.crdLabels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ include "oc.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/component: crd
app.kubernetes.io/part-of: orderflow
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- /*
Fails the install when this release would take over a CRD (.name) that exists and is not its own,
and says how to resolve it: Helm refuses that anyway, but with an error that names no way out.
It happens when the chart is installed a second time (another namespace: the CRD is cluster-wide
and one release manages it), when a release is uninstalled (the CRD is kept) and the chart is
installed again under another name, and when the CRD was applied with kubectl. Under
`helm template` lookup finds nothing, so nothing is checked.
*/ -}}
{{- define "oc.checkCRDOwner" -}}
{{- $crd := lookup "apiextensions.k8s.io/v1" "CustomResourceDefinition" "" .name -}}
{{- if $crd -}}
{{- $annotations := $crd.metadata.annotations | default dict -}}
{{- $owner := get $annotations "meta.helm.sh/release-name" -}}
{{- $ownerNamespace := get $annotations "meta.helm.sh/release-namespace" -}}
{{- $release := .root.Release -}}
{{- if not (and (eq $owner $release.Name) (eq $ownerNamespace $release.Namespace)) -}}
{{- $adopt := printf "kubectl label crd %s app.kubernetes.io/managed-by=Helm --overwrite\n    kubectl annotate crd %s meta.helm.sh/release-name=%s meta.helm.sh/release-namespace=%s --overwrite" .name .name $release.Name $release.Namespace -}}
{{- if $owner -}}
{{- fail (printf "\n\nThe CRD %s belongs to the Helm release %s in namespace %s, not to this one (%s in %s). Either:\n- that release is installed (this chart installed twice): the CRD is cluster-wide and that release keeps it up to date, so install this one with --set crds.install=false; or\n- that release was uninstalled (the CRD is kept, and every object of its kind with it): let this release manage the CRD from now on, then install again:\n    %s\n" .name $owner $ownerNamespace $release.Name $release.Namespace $adopt) -}}
{{- else -}}
{{- fail (printf "\n\nThe CRD %s exists but no Helm release manages it (applied with kubectl?). Either install with --set crds.install=false and keep applying it yourself, or let this release manage it from now on, then install again:\n    %s\n" .name $adopt) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- end }}
