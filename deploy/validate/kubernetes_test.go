package validate

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/kustomize/api/krusty"
	kusttypes "sigs.k8s.io/kustomize/api/types"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"
)

var kubeDir = filepath.Join(repo, "deploy", "kubernetes")

// manifests are the objects of a kustomize build, decoded.
type manifests struct {
	statefulSets map[string]*appsv1.StatefulSet
	jobs         map[string]*batchv1.Job
	services     map[string]*corev1.Service
	secrets      map[string]*corev1.Secret
	pdbs         map[string]*policyv1.PodDisruptionBudget
	policies     map[string]*networkingv1.NetworkPolicy
	namespaces   map[string]*corev1.Namespace
}

// decodeStrict decodes one object of YAML into the type of its kind,
// failing on a field the type does not have, a wrong type or a repeated
// key: what the API server would refuse or, worse, silently drop.
func decodeStrict(data []byte, m *manifests) (string, error) {
	var head metav1.TypeMeta
	if err := yaml.Unmarshal(data, &head); err != nil {
		return "", err
	}
	var obj interface{ GetName() string }
	var add func()
	switch head.APIVersion + " " + head.Kind {
	case "apps/v1 StatefulSet":
		o := &appsv1.StatefulSet{}
		obj, add = o, func() { m.statefulSets[o.Name] = o }
	case "batch/v1 Job":
		o := &batchv1.Job{}
		obj, add = o, func() { m.jobs[o.Name] = o }
	case "v1 Service":
		o := &corev1.Service{}
		obj, add = o, func() { m.services[o.Name] = o }
	case "v1 Secret":
		o := &corev1.Secret{}
		obj, add = o, func() { m.secrets[o.Name] = o }
	case "v1 Namespace":
		o := &corev1.Namespace{}
		obj, add = o, func() { m.namespaces[o.Name] = o }
	case "policy/v1 PodDisruptionBudget":
		o := &policyv1.PodDisruptionBudget{}
		obj, add = o, func() { m.pdbs[o.Name] = o }
	case "networking.k8s.io/v1 NetworkPolicy":
		o := &networkingv1.NetworkPolicy{}
		obj, add = o, func() { m.policies[o.Name] = o }
	default:
		return "", fmt.Errorf("kind %s %s: not one this test knows (add it)", head.APIVersion, head.Kind)
	}
	if err := yaml.UnmarshalStrict(data, obj); err != nil {
		return "", fmt.Errorf("%s: %w", head.Kind, err)
	}
	if obj.GetName() == "" {
		return "", fmt.Errorf("%s without a name", head.Kind)
	}
	add()
	return head.Kind + "/" + obj.GetName(), nil
}

func newManifests() *manifests {
	return &manifests{
		statefulSets: map[string]*appsv1.StatefulSet{}, jobs: map[string]*batchv1.Job{}, services: map[string]*corev1.Service{},
		secrets: map[string]*corev1.Secret{}, pdbs: map[string]*policyv1.PodDisruptionBudget{},
		policies: map[string]*networkingv1.NetworkPolicy{}, namespaces: map[string]*corev1.Namespace{},
	}
}

// build runs kustomize over deploy/kubernetes, as `kubectl apply -k`
// does, and decodes every object it makes.
func build(t *testing.T) *manifests {
	t.Helper()
	res, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(filesys.MakeFsOnDisk(), kubeDir)
	if err != nil {
		t.Fatalf("kustomize build %s: %v", kubeDir, err)
	}
	m := newManifests()
	for _, r := range res.Resources() {
		data, err := r.AsYAML()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := decodeStrict(data, m); err != nil {
			t.Errorf("kustomize build: %v", err)
		}
	}
	return m
}

// Every file decodes strictly on its own too: the kustomization into
// kustomize's type, the others (secret.example.yaml included, which the
// kustomization leaves out) object by object.
func TestManifestFilesDecodeStrictly(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(kubeDir, "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no manifests in %s: %v", kubeDir, err)
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if filepath.Base(f) == "kustomization.yaml" {
			var k kusttypes.Kustomization
			if err := yaml.UnmarshalStrict(data, &k); err != nil {
				t.Errorf("%s: %v", f, err)
			}
			continue
		}
		m := newManifests()
		for i, doc := range strings.Split(string(data), "\n---\n") {
			if strings.TrimSpace(doc) == "" {
				continue
			}
			if _, err := decodeStrict([]byte(doc), m); err != nil {
				t.Errorf("%s, object %d: %v", f, i+1, err)
			}
		}
	}
}

// The strict decoder refuses what the API server would drop or refuse,
// so that the test above can fail.
func TestDecodeStrictRefuses(t *testing.T) {
	for _, tc := range []struct{ name, doc string }{
		{"unknown field", "apiVersion: v1\nkind: Service\nmetadata: {name: x}\nspec: {sesionAffinity: ClientIP}\n"},
		{"wrong type", "apiVersion: apps/v1\nkind: StatefulSet\nmetadata: {name: x}\nspec: {replicas: three}\n"},
		{"repeated key", "apiVersion: v1\nkind: Service\nmetadata: {name: x}\nspec: {type: ClusterIP, type: LoadBalancer}\n"},
		{"unknown kind", "apiVersion: v1\nkind: Sevrice\nmetadata: {name: x}\n"},
		{"no name", "apiVersion: v1\nkind: Service\nmetadata: {}\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := decodeStrict([]byte(tc.doc), newManifests()); err == nil {
				t.Errorf("accepted:\n%s", tc.doc)
			}
		})
	}
}

// exampleSecret decodes secret.example.yaml, the Secret the docs have
// operators create.
func exampleSecret(t *testing.T) *manifests {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(kubeDir, "secret.example.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	sm := newManifests()
	if _, err := decodeStrict(data, sm); err != nil {
		t.Fatal(err)
	}
	return sm
}

func container(t *testing.T, spec *corev1.PodSpec, name string) *corev1.Container {
	t.Helper()
	for i := range spec.Containers {
		if spec.Containers[i].Name == name {
			return &spec.Containers[i]
		}
	}
	t.Fatalf("no container %s", name)
	return nil
}

func env(c *corev1.Container, name string) *corev1.EnvVar {
	for i := range c.Env {
		if c.Env[i].Name == name {
			return &c.Env[i]
		}
	}
	return nil
}

// The agent's workload: its ports are the agent's, its probes the health
// endpoints, its settings exist, its secrets come from the Secret, and
// its grace period covers the drain.
func TestAgentWorkload(t *testing.T) {
	m := build(t)
	sts, ok := m.statefulSets["lwm2m-agent"]
	if !ok {
		t.Fatal("no StatefulSet lwm2m-agent")
	}
	if sts.Spec.Replicas == nil || *sts.Spec.Replicas < 2 {
		t.Errorf("agent replicas %v: want several", sts.Spec.Replicas)
	}
	pod := &sts.Spec.Template.Spec
	c := container(t, pod, "agent")
	if c.Image != "registry.example.com/lwm2m-agent:latest" {
		t.Errorf("agent image %q: the kustomization's images entry does not name it", c.Image)
	}
	want := agentPorts(t)
	got := map[string]int32{}
	for _, p := range c.Ports {
		got[p.Name] = p.ContainerPort
		wantProto := corev1.ProtocolUDP
		if p.Name == "http" {
			wantProto = corev1.ProtocolTCP
		}
		if p.Protocol != wantProto {
			t.Errorf("container port %s: protocol %s, want %s", p.Name, p.Protocol, wantProto)
		}
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("container ports %v, want the agent's defaults %v", got, want)
	}
	for _, pr := range []struct {
		name  string
		probe *corev1.Probe
		path  string
	}{
		{"readiness", c.ReadinessProbe, "/health/ready"},
		{"liveness", c.LivenessProbe, "/health/live"},
		{"startup", c.StartupProbe, "/health/live"},
	} {
		if pr.probe == nil || pr.probe.HTTPGet == nil {
			t.Errorf("%s probe: none, or not HTTP", pr.name)
			continue
		}
		if pr.probe.HTTPGet.Path != pr.path || pr.probe.HTTPGet.Port.String() != "http" {
			t.Errorf("%s probe: %s on %s, want %s on http", pr.name, pr.probe.HTTPGet.Path, pr.probe.HTTPGet.Port.String(), pr.path)
		}
	}
	_, envs := agentDefaults(t)
	for _, e := range c.Env {
		if strings.HasPrefix(e.Name, "LWM2M_AGENT_") && !envs[e.Name] && !pendingEnvs[e.Name] {
			t.Errorf("env %s: no such setting in docs/configuration.md", e.Name)
		}
	}
	sm := exampleSecret(t)
	// every replica the same DTLS state key, from the one Secret
	for _, name := range []string{"LWM2M_AGENT_ADMIN_PASSWORD", "LWM2M_AGENT_MONGO_URI", "LWM2M_AGENT_DTLS_STATE_KEY"} {
		e := env(c, name)
		if e == nil || e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil {
			t.Errorf("env %s: not from a Secret", name)
			continue
		}
		ref := e.ValueFrom.SecretKeyRef
		s, ok := sm.secrets[ref.Name]
		if !ok {
			t.Errorf("env %s: Secret %s is not the one secret.example.yaml shows", name, ref.Name)
		} else if _, ok := s.StringData[ref.Key]; !ok {
			t.Errorf("env %s: secret.example.yaml has no key %s", name, ref.Key)
		}
	}
	if len(m.secrets) != 0 {
		t.Errorf("the kustomization applies secrets %v: they do not belong in the repository", m.secrets)
	}
	// The grace period covers the drain, 5 s of HTTP requests and 10 s to
	// close the store (agent/app), and some room.
	delay := time.Duration(0)
	if e := env(c, "LWM2M_AGENT_SHUTDOWN_DELAY"); e != nil {
		var err error
		if delay, err = time.ParseDuration(e.Value); err != nil {
			t.Fatalf("LWM2M_AGENT_SHUTDOWN_DELAY: %v", err)
		}
	}
	if delay < 2*time.Duration(c.ReadinessProbe.PeriodSeconds)*time.Second {
		t.Errorf("shutdown delay %v: under two readiness periods, endpoints may still send traffic when the sockets close", delay)
	}
	if grace := pod.TerminationGracePeriodSeconds; grace == nil || time.Duration(*grace)*time.Second < delay+20*time.Second {
		t.Errorf("terminationGracePeriodSeconds %v: want at least the shutdown delay %v + 20 s", grace, delay)
	}
	if pod.TopologySpreadConstraints == nil && pod.Affinity == nil {
		t.Error("agent replicas are not spread over nodes")
	}
}

// Every pod runs as non-root without privileges on a read-only root, with
// requests and a memory limit: what the namespace's restricted Pod
// Security level and a platform's quotas need.
func TestPodsHardenedAndSized(t *testing.T) {
	m := build(t)
	pods := map[string]*corev1.PodSpec{}
	for n, s := range m.statefulSets {
		pods["StatefulSet/"+n] = &s.Spec.Template.Spec
	}
	for n, j := range m.jobs {
		pods["Job/"+n] = &j.Spec.Template.Spec
	}
	if len(pods) < 3 {
		t.Fatalf("pods %v: want the agent, MongoDB and its init job", slices.Collect(func(y func(string) bool) {
			for k := range pods {
				y(k)
			}
		}))
	}
	for name, p := range pods {
		sc := p.SecurityContext
		if sc == nil || sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot || sc.SeccompProfile == nil {
			t.Errorf("%s: pod not runAsNonRoot with a seccomp profile", name)
		}
		for _, c := range p.Containers {
			cs := c.SecurityContext
			if cs == nil || cs.AllowPrivilegeEscalation == nil || *cs.AllowPrivilegeEscalation ||
				cs.ReadOnlyRootFilesystem == nil || !*cs.ReadOnlyRootFilesystem ||
				cs.Capabilities == nil || !slices.Contains(cs.Capabilities.Drop, "ALL") {
				t.Errorf("%s/%s: want allowPrivilegeEscalation false, readOnlyRootFilesystem true, capabilities drop ALL", name, c.Name)
			}
			r := c.Resources
			if r.Requests.Cpu().IsZero() || r.Requests.Memory().IsZero() || r.Limits.Memory().IsZero() {
				t.Errorf("%s/%s: want cpu and memory requests and a memory limit", name, c.Name)
			}
		}
	}
}

// The devices' Service: a UDP load balancer that keeps a source address
// on one replica and keeps the clients' addresses, on the agent's ports.
func TestDeviceLoadBalancer(t *testing.T) {
	m := build(t)
	svc, ok := m.services["lwm2m-agent-udp"]
	if !ok {
		t.Fatal("no Service lwm2m-agent-udp")
	}
	s := svc.Spec
	if s.Type != corev1.ServiceTypeLoadBalancer || s.SessionAffinity != corev1.ServiceAffinityClientIP ||
		s.ExternalTrafficPolicy != corev1.ServiceExternalTrafficPolicyLocal {
		t.Errorf("type %s, sessionAffinity %s, externalTrafficPolicy %s: want LoadBalancer, ClientIP, Local", s.Type, s.SessionAffinity, s.ExternalTrafficPolicy)
	}
	sts := m.statefulSets["lwm2m-agent"]
	if !labels.SelectorFromSet(s.Selector).Matches(labels.Set(sts.Spec.Template.Labels)) {
		t.Errorf("selector %v does not select the agent's pods", s.Selector)
	}
	want := agentPorts(t)
	delete(want, "http")
	for _, p := range s.Ports {
		if p.Protocol != corev1.ProtocolUDP || p.TargetPort.String() != p.Name || want[p.Name] != p.Port {
			t.Errorf("port %s %d/%s → %s: want UDP on the agent's port, to the container port of that name", p.Name, p.Port, p.Protocol, p.TargetPort.String())
		}
		delete(want, p.Name)
	}
	if len(want) > 0 {
		t.Errorf("ports not balanced: %v", want)
	}
	if h, ok := m.services["lwm2m-agent-http"]; !ok || h.Spec.Type != corev1.ServiceTypeClusterIP || len(h.Spec.Ports) != 1 || h.Spec.Ports[0].TargetPort.String() != "http" {
		t.Errorf("the API's Service lwm2m-agent-http: want ClusterIP to port http, got %+v", h)
	}
}

// MongoDB: a replica set of three members with volumes, the init job and
// the agents' URI naming the same members and set, disruption budgets
// that select pods, and a network policy that lets the agents in.
func TestMongoReplicaSet(t *testing.T) {
	m := build(t)
	sts, ok := m.statefulSets["mongo"]
	if !ok {
		t.Fatal("no StatefulSet mongo")
	}
	if sts.Spec.Replicas == nil || *sts.Spec.Replicas != 3 || len(sts.Spec.VolumeClaimTemplates) == 0 {
		t.Fatalf("mongo: want 3 replicas with volume claims")
	}
	if svc, ok := m.services[sts.Spec.ServiceName]; !ok || svc.Spec.ClusterIP != corev1.ClusterIPNone {
		t.Errorf("mongo's service %s: want a headless Service", sts.Spec.ServiceName)
	}
	cmd := strings.Join(container(t, &sts.Spec.Template.Spec, "mongod").Command, " ")
	if !strings.Contains(cmd, "--replSet rs0") {
		t.Errorf("mongod %q: not replica set rs0", cmd)
	}
	job, ok := m.jobs["mongo-rs-init"]
	if !ok {
		t.Fatal("no Job mongo-rs-init")
	}
	script := strings.Join(job.Spec.Template.Spec.Containers[0].Command, " ")
	sm := exampleSecret(t)
	uri := sm.secrets["lwm2m-agent"].StringData["mongo-uri"]
	if !strings.Contains(uri, "replicaSet=rs0") || !strings.Contains(script, `_id: "rs0"`) {
		t.Errorf("replica set name: URI %q, init %q", uri, script)
	}
	for i := range int(*sts.Spec.Replicas) {
		host := fmt.Sprintf("mongo-%d.%s", i, sts.Spec.ServiceName)
		if !strings.Contains(script, host+":27017") || !strings.Contains(uri, host) {
			t.Errorf("member %s: missing from the init job or the agents' URI", host)
		}
	}
	podLabels := map[string]labels.Set{}
	for n, s := range m.statefulSets {
		podLabels[n] = s.Spec.Template.Labels
	}
	for n, pdb := range m.pdbs {
		sel, err := metav1.LabelSelectorAsSelector(pdb.Spec.Selector)
		if err != nil || !sel.Matches(podLabels[n]) {
			t.Errorf("PodDisruptionBudget %s does not select StatefulSet %s's pods", n, n)
		}
	}
	for _, n := range []string{"lwm2m-agent", "mongo"} {
		if _, ok := m.pdbs[n]; !ok {
			t.Errorf("no PodDisruptionBudget for %s", n)
		}
	}
	np, ok := m.policies["mongo"]
	if !ok || len(np.Spec.Ingress) == 0 || len(np.Spec.Ingress[0].From) == 0 {
		t.Fatal("no NetworkPolicy mongo with an ingress rule")
	}
	from, err := metav1.LabelSelectorAsSelector(np.Spec.Ingress[0].From[0].PodSelector)
	if err != nil || !from.Matches(podLabels["lwm2m-agent"]) || !from.Matches(labels.Set(job.Spec.Template.Labels)) {
		t.Errorf("NetworkPolicy mongo keeps the agents or the init job out")
	}
}
