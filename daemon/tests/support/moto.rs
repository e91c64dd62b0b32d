//! moto, the AWS emulator, as the AWS adapter's tests use it: a server per test on a free
//! loopback port, SDK clients for it, and a proxy in front of it that answers throttling or
//! server errors on cue.
//!
//! moto comes from `tests/setup.sh` (target/tools/venv); without it these tests fail rather
//! than skip.

use std::collections::HashMap;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_autoscaling::config::Credentials;

pub struct Moto {
    child: Child,
    pub url: String,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("a free port")
}

impl Moto {
    pub async fn start() -> Moto {
        let binary = std::env::var_os("BALLAST_MOTO_SERVER")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/tools/venv/bin/moto_server"));
        assert!(binary.exists(), "moto_server not found at {}: run tests/setup.sh", binary.display());
        let port = free_port();
        let child = Command::new(&binary)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("moto_server starts");
        let moto = Moto { child, url: format!("http://127.0.0.1:{port}") };
        let start = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(start.elapsed() < Duration::from_secs(30), "moto_server did not listen within 30 s");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        moto
    }
}

/// An SDK configuration for an endpoint, with static credentials and us-east-1.
pub async fn sdk_config(url: &str) -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("testing", "testing", None, None, "tests"))
        .endpoint_url(url)
        .load()
        .await
}

/// Request ids of the proxy's own answers.
static REQUEST_IDS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(7_000_000);

/// What the proxy does to requests of one API action.
#[derive(Clone, Debug)]
pub enum Fault {
    /// Answer without forwarding: (HTTP status, error code).
    Refuse(u16, &'static str),
    /// Forward, then replace the answer with this status (the request took effect, the
    /// client does not know).
    LoseAnswer(u16),
}

#[derive(Default)]
struct ProxyState {
    faults: HashMap<String, Vec<Fault>>,
    forwarded: HashMap<String, u32>,
    /// When each request of an action reached the proxy.
    arrivals: HashMap<String, Vec<std::time::SystemTime>>,
}

/// A proxy in front of moto that injects faults by API action (`Action=` of the query
/// protocols) and counts what it forwarded.
#[derive(Clone)]
pub struct Proxy {
    pub url: String,
    state: Arc<Mutex<ProxyState>>,
}

impl Proxy {
    pub async fn start(upstream: &str) -> Proxy {
        use axum::body::{Body, Bytes};
        use axum::http::{Request, Response};
        use http_body_util::BodyExt;
        use hyper_util::client::legacy::Client;
        use hyper_util::rt::TokioExecutor;

        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let state = Arc::new(Mutex::new(ProxyState::default()));
        let client: Client<_, http_body_util::Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
        let upstream = upstream.to_string();
        let shared = state.clone();
        let handler = move |request: Request<Body>| {
            let (client, upstream, state) = (client.clone(), upstream.clone(), shared.clone());
            async move {
                let arrived = std::time::SystemTime::now();
                let (parts, body) = request.into_parts();
                let body = body.collect().await.map(|b| b.to_bytes()).unwrap_or_default();
                let text = String::from_utf8_lossy(&body);
                let action = text.split('&').find_map(|kv| kv.strip_prefix("Action=")).unwrap_or("").to_string();
                let fault = {
                    let mut s = state.lock().unwrap();
                    s.arrivals.entry(action.clone()).or_default().push(arrived);
                    let fault = s.faults.get_mut(&action).and_then(|f| (!f.is_empty()).then(|| f.remove(0)));
                    if !matches!(fault, Some(Fault::Refuse(..))) {
                        *s.forwarded.entry(action.clone()).or_default() += 1;
                    }
                    fault
                };
                if let Some(Fault::Refuse(status, code)) = fault {
                    let xml = format!(
                        "<ErrorResponse><Error><Type>Sender</Type><Code>{code}</Code><Message>injected</Message></Error><RequestId>{}</RequestId></ErrorResponse>",
                        // A new id on every answer, as AWS gives.
                        REQUEST_IDS.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
                    );
                    return Response::builder()
                        .status(status)
                        .header("content-type", "text/xml")
                        .body(Body::from(xml))
                        .unwrap();
                }
                let uri = format!("{upstream}{}", parts.uri.path_and_query().map(|p| p.as_str()).unwrap_or("/"));
                let mut forward = Request::builder().method(parts.method).uri(uri);
                for (k, v) in parts.headers.iter() {
                    forward = forward.header(k, v);
                }
                let answer = client.request(forward.body(http_body_util::Full::new(body)).unwrap()).await.unwrap();
                let (mut parts, body) = answer.into_parts();
                let body = body.collect().await.map(|b| b.to_bytes()).unwrap_or_default();
                if let Some(Fault::LoseAnswer(status)) = fault {
                    parts.status = axum::http::StatusCode::from_u16(status).unwrap();
                    let xml = "<ErrorResponse><Error><Type>Receiver</Type><Code>InternalFailure</Code><Message>lost</Message></Error></ErrorResponse>";
                    parts.headers.remove("content-length");
                    return Response::from_parts(parts, Body::from(xml));
                }
                Response::from_parts(parts, Body::from(body))
            }
        };
        let app = axum::Router::new().fallback(handler);
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Proxy { url, state }
    }

    pub fn fail(&self, action: &str, faults: &[Fault]) {
        self.state.lock().unwrap().faults.entry(action.to_string()).or_default().extend(faults.iter().cloned());
    }

    /// When each request of an action reached the proxy, in order.
    pub fn arrivals(&self, action: &str) -> Vec<std::time::SystemTime> {
        self.state.lock().unwrap().arrivals.get(action).cloned().unwrap_or_default()
    }

    /// Requests of an action that reached moto.
    pub fn forwarded(&self, action: &str) -> u32 {
        self.state.lock().unwrap().forwarded.get(action).copied().unwrap_or(0)
    }
}

/// A mixed instances group `name` (min 0, max 10, none running) of these overrides (type,
/// weight), on demand (launched by `strategy`, else `prioritized`), tagged with `tags` (the
/// tags Cluster Autoscaler's discovery reads, for the cluster the test runs).
pub async fn mixed_group(
    config: &SdkConfig,
    name: &str,
    overrides: &[(&str, Option<&str>)],
    strategy: Option<&str>,
    tags: &[(&str, &str)],
) {
    use aws_sdk_autoscaling::types::{
        InstancesDistribution, LaunchTemplate, LaunchTemplateOverrides, LaunchTemplateSpecification,
        MixedInstancesPolicy, Tag,
    };
    use aws_sdk_ec2::types::RequestLaunchTemplateData;
    let template_name = format!("{name}-lt");
    aws_sdk_ec2::Client::new(config)
        .create_launch_template()
        .launch_template_name(&template_name)
        .launch_template_data(RequestLaunchTemplateData::builder().image_id("ami-12c6146b").build())
        .send()
        .await
        .expect("launch template");
    let spec = LaunchTemplateSpecification::builder().launch_template_name(&template_name).version("$Latest").build();
    let mut template = LaunchTemplate::builder().launch_template_specification(spec);
    for (t, weight) in overrides {
        let o = LaunchTemplateOverrides::builder().instance_type(*t).set_weighted_capacity(weight.map(str::to_string));
        template = template.overrides(o.build());
    }
    let policy = MixedInstancesPolicy::builder()
        .launch_template(template.build())
        .instances_distribution(
            InstancesDistribution::builder()
                .on_demand_percentage_above_base_capacity(100)
                .set_on_demand_allocation_strategy(strategy.map(str::to_string))
                .build(),
        )
        .build();
    let mut create = aws_sdk_autoscaling::Client::new(config)
        .create_auto_scaling_group()
        .auto_scaling_group_name(name)
        .min_size(0)
        .max_size(10)
        .desired_capacity(0)
        .availability_zones("us-east-1a")
        .mixed_instances_policy(policy);
    for (k, v) in tags {
        create =
            create.tags(Tag::builder().key(*k).value(*v).resource_id(name).resource_type("auto-scaling-group").build());
    }
    create.send().await.expect("Auto Scaling group");
}

/// The cluster the AWS adapter's tests tag their groups for.
pub const CLUSTER: &str = "prod";

/// Cluster Autoscaler's discovery tags for [`CLUSTER`].
pub fn ca_tags() -> Vec<(&'static str, &'static str)> {
    vec![("k8s.io/cluster-autoscaler/enabled", "true"), ("k8s.io/cluster-autoscaler/prod", "owned")]
}

/// The adapter's settings for [`CLUSTER`], calls unthrottled.
pub fn aws_settings() -> ballast::aws::AwsSettings {
    ballast::aws::AwsSettings { cluster_name: CLUSTER.into(), max_calls_per_second: 1000.0, ..Default::default() }
}

/// A launch template of `instance_type` (image `ami-12c6146b`) and a group using it, tagged with `tags`.
pub async fn template_group(
    config: &aws_config::SdkConfig,
    name: &str,
    instance_type: &str,
    tags: &[(&str, &str)],
    desired: i32,
) {
    template_group_of(config, name, launch_data(instance_type).build(), tags, desired).await;
}

/// What [`template_group`]'s launch template holds, to add to.
pub fn launch_data(instance_type: &str) -> aws_sdk_ec2::types::builders::RequestLaunchTemplateDataBuilder {
    aws_sdk_ec2::types::RequestLaunchTemplateData::builder()
        .image_id("ami-12c6146b")
        .instance_type(aws_sdk_ec2::types::InstanceType::from(instance_type))
}

/// A launch template holding `data` and a group using it, tagged with `tags`.
pub async fn template_group_of(
    config: &aws_config::SdkConfig,
    name: &str,
    data: aws_sdk_ec2::types::RequestLaunchTemplateData,
    tags: &[(&str, &str)],
    desired: i32,
) {
    let ec2 = aws_sdk_ec2::Client::new(config);
    let template = format!("{name}-lt");
    ec2.create_launch_template().launch_template_name(&template).launch_template_data(data).send().await.unwrap();
    let asg = aws_sdk_autoscaling::Client::new(config);
    let mut create = asg
        .create_auto_scaling_group()
        .auto_scaling_group_name(name)
        .min_size(0)
        .max_size(10)
        .desired_capacity(desired)
        .availability_zones("us-east-1a")
        .launch_template(
            aws_sdk_autoscaling::types::LaunchTemplateSpecification::builder()
                .launch_template_name(&template)
                .version("$Latest")
                .build(),
        );
    for (k, v) in tags {
        create = create.tags(
            aws_sdk_autoscaling::types::Tag::builder()
                .key(*k)
                .value(*v)
                .resource_id(name)
                .resource_type("auto-scaling-group")
                .propagate_at_launch(true)
                .build(),
        );
    }
    create.send().await.unwrap();
}
