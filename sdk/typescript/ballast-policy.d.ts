// Type declarations for the `ballast:policy@0.1.16` world as componentize-js presents it to a
// plugin: records are objects with camelCase fields, variants are `{ tag, val }`, enums are
// kebab-case strings, `option<T>` is `T | undefined`, and u64 values are `bigint`.
// Keep in step with sdk/wit/policy.wit.

declare module "ballast:policy/types@0.1.16" {
  export interface Resources { cpuMillis: bigint; memoryBytes: bigint; pods: number; gpus: number }
  export interface Label { key: string; value: string }
  export type TaintEffect = "no-schedule" | "prefer-no-schedule" | "no-execute";
  export interface Taint { key: string; value: string; effect: TaintEffect }
  export interface Toleration { key: string; operatorExists: boolean; value: string; effect?: TaintEffect }
  export type NodeGroupKind = "asg" | "fargate";
  export interface InstanceType { name: string; capacity: Resources; allocatable: Resources; pricePerHour: number }
  export interface NodeGroup {
    id: string; kind: NodeGroupKind; minSize: number; maxSize: number; desiredSize: number; readyNodes: number;
    instanceTypes: InstanceType[]; labels: Label[]; taints: Taint[]; zones: string[];
  }
  export interface Node {
    name: string; group?: string; instanceType: string; zone: string; allocatable: Resources; requested: Resources;
    usage?: Resources; ready: boolean; cordoned: boolean; ageSeconds: bigint; podCount: number; removalBlocker?: string;
  }
  export type WorkloadKind = "deployment" | "stateful-set" | "daemon-set" | "job" | "replica-set" | "other";
  export interface WorkloadRef { kind: WorkloadKind; namespace: string; name: string }
  export interface PendingPod {
    namespace: string; name: string; requests: Resources; owner?: WorkloadRef; nodeSelector: Label[];
    affinityKeys: string[]; tolerations: Toleration[]; ageSeconds: bigint;
  }
  /** Pending pods alike for placement, counted (since 0.1.2). */
  export interface PendingShape {
    namespace: string; owner?: WorkloadRef; requests: Resources; nodeSelector: Label[]; affinityKeys: string[];
    tolerations: Toleration[]; count: number; oldestAgeSeconds: bigint;
  }
  /** Pods running on one node alike for placement, counted (since 0.1.4). */
  export interface PodShape {
    namespace: string; owner?: WorkloadRef; requests: Resources; nodeSelector: Label[]; affinityKeys: string[];
    tolerations: Toleration[]; count: number; movesOnDrain: boolean;
  }
  /** The next run of a workload that runs on a schedule, a CronJob (since 0.1.5). */
  export interface ScheduledRun {
    owner: WorkloadRef; dueAtMillis: bigint; pods: number; requests: Resources; nodeSelector: Label[];
    affinityKeys: string[]; tolerations: Toleration[]; onFargate: boolean;
  }
  export type Placement = { tag: "unplaced" } | { tag: "fargate" } | { tag: "ec2"; val?: string };
  export interface Workload {
    id: WorkloadRef; replicas: number; requestsPerReplica: Resources; placement: Placement;
    fargateBlocker?: string; usagePerReplica?: Resources;
  }
  export interface FargateSize { cpuMillis: bigint; memoryMibMin: bigint; memoryMibMax: bigint; memoryMibStep: bigint }
  export interface FargatePricing { perVcpuHour: number; perGbHour: number; overheadMib: bigint; sizes: FargateSize[] }
  export type PlacementTarget = { tag: "fargate" } | { tag: "ec2"; val?: string };
  export type Action =
    | { tag: "scale-to"; val: { group: string; size: number } }
    | { tag: "scale-by"; val: { group: string; delta: number } }
    | { tag: "remove-nodes"; val: string[] }
    | { tag: "place"; val: { workload: WorkloadRef; target: PlacementTarget } };
  export interface Decision { action: Action; reason: string }
  export interface Proposal { plugin: string; decision: Decision }
  export interface MetricPoint { atMillis: bigint; value: number }
  export interface MetricSeries { name: string; points: MetricPoint[]; readAtMillis: bigint; error?: string }
  /** Cluster Autoscaler's per-group settings from the group's tags (since 0.1.3). */
  export interface GroupOptions {
    group: string; scaleDownUtilizationThreshold?: number; scaleDownGpuUtilizationThreshold?: number;
    scaleDownUnneededSeconds?: bigint; scaleDownUnreadySeconds?: bigint; ignoreDaemonsetsUtilization?: boolean;
  }
  /** Where a node group stands against the host's cooldowns (since 0.1.6). */
  export interface GroupCooldown {
    group: string; lastScaleUpMillis?: bigint; lastScaleDownMillis?: bigint; scaleUpAllowedAtMillis: bigint;
    scaleDownAllowedAtMillis: bigint;
  }
  /** The replica bounds a HorizontalPodAutoscaler keeps a workload within (since 0.1.7). */
  export interface HorizontalAutoscaler { target: WorkloadRef; minReplicas: number; maxReplicas: number }
  /** A workload the host's placement cooldown still holds (since 0.1.8). */
  export interface PlacementCooldown { workload: WorkloadRef; placedAtMillis: bigint; allowedAtMillis: bigint }
  /** An Auto Scaling group whose launches failed since it last delivered nodes (since 0.1.9). */
  export interface LaunchFailure {
    group: string; failedAtMillis: bigint; reason: string; inARow: number; backingOffUntilMillis: bigint;
  }
  /** How long an Auto Scaling group took to deliver its last few nodes, oldest first (since 0.1.10). */
  export interface ProvisioningTime { group: string; recentSeconds: Uint32Array }
  /** A CapacityBuffer the host resolved: spare room for `pods` pods of this shape (since 0.1.11). */
  export interface CapacityBuffer {
    namespace: string; name: string; pods: number; requests: Resources; nodeSelector: Label[]; affinityKeys: string[];
    tolerations: Toleration[];
  }
  /** At most `maxPods` pods of a workload on one node: a required pod anti-affinity, or the cap a hostname topology spread sets now (since 0.1.12). */
  export interface PerNodeLimit { workload: WorkloadRef; maxPods: number }
  /** A workload's pods on nodes in one zone (since 0.1.13). */
  export interface ZonePods { zone: string; pods: number }
  /** A workload kept within `maxSkew` over zones by a zone topology spread (since 0.1.13). */
  export interface ZoneSpread { workload: WorkloadRef; maxSkew: number; podsByZone: ZonePods[] }
  /** A node's ephemeral storage in bytes; 2^64-1 allocatable where its disk is not known (since 0.1.14). */
  export interface NodeStorage { allocatableBytes: bigint; requestedBytes: bigint }
  /** A workload whose pods may not share a node with those of `apartFrom`, listed under both (since 0.1.16). */
  export interface KeptAway { workload: WorkloadRef; apartFrom: WorkloadRef[] }
}

declare module "ballast:policy/host@0.1.16" {
  export type Level = "trace" | "debug" | "info" | "warn" | "error";
  export function log(level: Level, message: string): void;
  export function nowMillis(): bigint;
}

declare module "ballast:policy/snapshot@0.1.16" {
  import type {
    FargatePricing, GroupCooldown, GroupOptions, HorizontalAutoscaler, MetricSeries, Node, NodeGroup, PendingPod,
    LaunchFailure, PendingShape, PlacementCooldown, PodShape, Proposal, ProvisioningTime, ScheduledRun, Workload,
    CapacityBuffer, PerNodeLimit, ZoneSpread, NodeStorage, KeptAway,
  } from "ballast:policy/types@0.1.16";
  export class Snapshot {
    takenAtMillis(): bigint;
    nodeGroups(): NodeGroup[];
    nodes(): Node[];
    nodesInGroup(group: string): Node[];
    pendingPods(): PendingPod[];
    /** The pending pods grouped by shape with counts (since 0.1.2). */
    pendingShapes(): PendingShape[];
    workloads(): Workload[];
    fargatePricing(): FargatePricing;
    settings(): string;
    state(): Uint8Array | undefined;
    proposals(): Proposal[];
    /** CloudWatch series the configuration names (since 0.1.1). */
    metrics(): MetricSeries[];
    /** Cluster Autoscaler's settings of the groups that set any (since 0.1.3). */
    groupOptions(): GroupOptions[];
    /** The pods running on one node, grouped by shape (since 0.1.4). */
    podsOnNode(node: string): PodShape[];
    /** The next run of each workload that runs on a schedule, soonest first (since 0.1.5). */
    scheduledRuns(): ScheduledRun[];
    /** Each Auto Scaling group's standing against the host's cooldowns (since 0.1.6). */
    groupCooldowns(): GroupCooldown[];
    /** Every HorizontalPodAutoscaler whose bounds read, by target (since 0.1.7). */
    horizontalAutoscalers(): HorizontalAutoscaler[];
    /** The workloads the host's placement cooldown still holds (since 0.1.8). */
    placementCooldowns(): PlacementCooldown[];
    /** The groups whose launches failed since they last delivered nodes (since 0.1.9). */
    launchFailures(): LaunchFailure[];
    /** How long each group took to deliver its last few nodes (since 0.1.10). */
    provisioningTimes(): ProvisioningTime[];
    /** The CapacityBuffers whose pod shape and size resolve, by namespace and name (since 0.1.11). */
    capacityBuffers(): CapacityBuffer[];
    /** The workloads that limit their pods per node, by workload (since 0.1.12). */
    perNodeLimits(): PerNodeLimit[];
    /** The workloads the scheduler keeps spread over zones, by workload (since 0.1.13). */
    zoneSpreads(): ZoneSpread[];
    /** Ephemeral storage, which `Resources` does not carry, beside the getter each completes (since 0.1.14). */
    nodeGroupStorage(): BigUint64Array[];
    nodeStorage(): NodeStorage[];
    nodesInGroupStorage(group: string): NodeStorage[];
    pendingPodStorage(): BigUint64Array;
    pendingShapeStorage(): BigUint64Array;
    podsOnNodeStorage(node: string): BigUint64Array;
    /** The same for what is not running yet (since 0.1.15): each workload's replica, run's and buffer's pod. */
    workloadStorage(): BigUint64Array;
    scheduledRunStorage(): BigUint64Array;
    capacityBufferStorage(): BigUint64Array;
    /** Dollars per GB-hour of a Fargate pod's disk beyond the 20 GiB included (since 0.1.15). */
    fargateStoragePrice(): number;
    /** The workloads kept off the nodes of other workloads' pods, by workload (since 0.1.16). */
    keptAway(): KeptAway[];
  }
}

/** What the plugin's `policy` export must look like. Throw a string to return an error. */
declare interface BallastPolicyExport {
  validateSettings(settings: string): void;
  evaluate(snapshot: import("ballast:policy/snapshot@0.1.16").Snapshot): {
    decisions: import("ballast:policy/types@0.1.16").Decision[];
    state?: Uint8Array;
  };
}
