//! Whether a node's pods fit on other nodes: a simulated placement.
//!
//! From a host that serves `pods-on-node` (contract 0.1.4) the pods are known by shape, and
//! each is placed at its own requests on a node whose group admits it (selectors, affinity
//! keys, taints), in any group: [`place_shapes`].
//!
//! From an older host only the node's requested total and pod count are known. What is
//! known for sure then: each pod on the node requests at most `largest`, the per-resource
//! maximum over the workloads that may run there, and at most the node's whole movable load.
//! So each pod fits in a slot of `min(largest, load)`, and the pods fit elsewhere if the
//! other nodes of its group hold as many such slots as there are pods ([`place`]). This
//! overestimates every pod, never underestimates one: a node it says can go surely can.

use ballast_sdk::prelude::*;

use super::kept_apart::KeptApart;

/// What must move off a node: its pods and their requests, DaemonSet pods aside.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Load {
    pub pods: u32,
    pub requests: Resources,
}

/// The room left on a node pods may move to.
#[derive(Clone, Debug)]
pub struct Target {
    pub node: String,
    /// The node's group, by its index in the plan's groups.
    pub group: usize,
    pub free: Resources,
}

/// What [`place_shapes`] could not place: pods of `shapes[shape]`, `count` of them.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Left {
    pub shape: usize,
    pub count: u32,
}

/// `count` pods of `shapes[shape]` placed on `targets[target]`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Placed {
    pub target: usize,
    pub shape: usize,
    pub count: u32,
}

/// The room a trial placement took, by target index, so that it can be given back.
#[derive(Debug, Default)]
pub struct Taken {
    room: Vec<(usize, Resources)>,
    /// The pods placed by shape, from [`place_shapes`].
    placed: Vec<Placed>,
    /// Pods of workloads kept apart it counted, as (workload, target, pods) ([`KeptApart`]).
    apart: Vec<(usize, usize, u32)>,
}

impl Taken {
    /// The targets that received pods, by index (one may appear more than once).
    pub fn receivers(&self) -> impl Iterator<Item = usize> + '_ {
        self.room.iter().map(|(i, _)| *i)
    }

    /// Where [`place_shapes`] put the pods, by shape (nothing from [`place`]).
    pub fn placed(&self) -> &[Placed] {
        &self.placed
    }

    /// How many targets received pods.
    pub fn spread(&self) -> usize {
        let mut seen: Vec<usize> = self.receivers().collect();
        seen.sort_unstable();
        seen.dedup();
        seen.len()
    }

    /// Returns the room to the targets it was taken from (the same slice, unchanged since),
    /// and uncounts its pods of workloads kept apart.
    pub fn give_back(self, targets: &mut [Target], apart: &mut KeptApart) {
        for (i, room) in self.room {
            targets[i].free = targets[i].free.saturating_add(&room);
        }
        for (w, t, pods) in self.apart {
            apart.remove(w, t, pods);
        }
    }
}

/// Places each pod of `shapes` at its requests, largest first, on the first of the targets
/// `on(shape)` names (positions into `targets`, ascending: fullest first keeps emptier nodes
/// candidates), taking the room it uses. Returns what it took and the pods that found no room
/// (none: they all fit).
///
/// `on` names the targets whose group admits the shape: at 5,000 nodes in a hundred groups,
/// a pod that selects one group has fifty targets to try, not five thousand. A target takes
/// a pod of a workload kept apart only while `apart` gives it room for one.
pub fn place_shapes<P: AsRef<[usize]>>(
    shapes: &[PodShape],
    targets: &mut [Target],
    apart: &mut KeptApart,
    on: impl Fn(usize) -> P,
) -> (Taken, Vec<Left>) {
    let mut order: Vec<usize> = (0..shapes.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse((shapes[i].requests.cpu_millis, shapes[i].requests.memory_bytes)));
    let mut taken = Taken::default();
    let mut left = Vec::new();
    for i in order {
        let shape = &shapes[i];
        let request = Resources { pods: 1, ..shape.requests };
        let limited = apart.limited(shape);
        let mut count = shape.count;
        for &t in on(i).as_ref() {
            if count == 0 {
                break;
            }
            let Some(target) = targets.get_mut(t) else { continue };
            let most = limited.map_or(u32::MAX, |w| apart.room(w, t));
            let mut here = 0;
            while count > 0 && here < most && target.free.fits(&request) {
                target.free = target.free.saturating_sub(&request);
                count -= 1;
                here += 1;
            }
            if here > 0 {
                taken.room.push((t, request.times(here)));
                taken.placed.push(Placed { target: t, shape: i, count: here });
                if let Some(w) = limited {
                    apart.add(w, t, here);
                    taken.apart.push((w, t, here));
                }
            }
        }
        if count > 0 {
            left.push(Left { shape: i, count });
        }
    }
    (taken, left)
}

/// The slot one pod of `load` surely fits in, given the largest request of any pod.
pub fn slot(load: &Load, largest: &Resources) -> Resources {
    Resources {
        cpu_millis: load.requests.cpu_millis.min(largest.cpu_millis),
        memory_bytes: load.requests.memory_bytes.min(largest.memory_bytes),
        pods: 1,
        gpus: load.requests.gpus.min(largest.gpus),
        ephemeral_storage_bytes: load.requests.ephemeral_storage_bytes.min(largest.ephemeral_storage_bytes),
    }
}

/// Places `load` on the targets of `group`, fullest first (so emptier nodes stay
/// candidates), taking the room it uses. Returns what it took, or `None`, leaving `targets`
/// untouched, when it does not fit.
pub fn place(load: &Load, largest: &Resources, group: usize, targets: &mut [Target]) -> Option<Taken> {
    if load.pods == 0 {
        return Some(Taken::default());
    }
    let slot = slot(load, largest);
    let mut order: Vec<usize> = (0..targets.len()).filter(|&i| targets[i].group == group).collect();
    order.sort_by_key(|&i| (targets[i].free.cpu_millis, targets[i].free.memory_bytes));
    let mut left = load.pods as u64;
    let mut plan = Vec::new();
    for i in order {
        let take = targets[i].free.slots_for(&slot).min(left);
        if take > 0 {
            plan.push((i, take));
            left -= take;
        }
        if left == 0 {
            break;
        }
    }
    if left > 0 {
        return None;
    }
    let mut taken = Taken::default();
    for &(i, take) in &plan {
        let used = slot.times(take as u32);
        targets[i].free = targets[i].free.saturating_sub(&used);
        taken.room.push((i, used));
    }
    Some(taken)
}

#[cfg(test)]
mod tests {
    use super::*;

    const GIB: u64 = 1 << 30;

    fn target(name: &str, cpu: u64, memory: u64, pods: u32) -> Target {
        let free = Resources { cpu_millis: cpu, memory_bytes: memory, pods, gpus: 0, ..Resources::ZERO };
        Target { node: name.into(), group: 0, free }
    }

    #[test]
    fn pods_are_counted_at_the_largest_size_they_could_be() {
        let largest = Resources { cpu_millis: 1000, memory_bytes: 2 * GIB, pods: 1, gpus: 0, ..Resources::ZERO };
        // Three pods, 1.5 CPU in all: each could be 1 CPU, so three 1-CPU slots are needed.
        let load = Load {
            pods: 3,
            requests: Resources { cpu_millis: 1500, memory_bytes: GIB, pods: 3, gpus: 0, ..Resources::ZERO },
        };
        let mut two = vec![target("a", 1000, 8 * GIB, 10), target("b", 1000, 8 * GIB, 10)];
        assert!(place(&load, &largest, 0, &mut two).is_none(), "1.5 CPU free in total is not proof");
        assert_eq!(two[0].free.cpu_millis, 1000, "a failed placement takes nothing");
        let mut three = vec![target("a", 2000, 8 * GIB, 10), target("b", 1000, 8 * GIB, 10)];
        assert_eq!(place(&load, &largest, 0, &mut three).map(|t| t.spread()), Some(2));
        assert_eq!(three.iter().map(|t| t.free.cpu_millis).sum::<u64>(), 0);
        // A single small pod needs only its own size.
        let one = Load {
            pods: 1,
            requests: Resources { cpu_millis: 200, memory_bytes: GIB, pods: 1, gpus: 0, ..Resources::ZERO },
        };
        let mut small = vec![target("a", 250, 2 * GIB, 1)];
        assert_eq!(place(&one, &largest, 0, &mut small).map(|t| t.spread()), Some(1));
        // Pod slots count too.
        let mut full = vec![target("a", 4000, 8 * GIB, 0)];
        assert!(place(&one, &largest, 0, &mut full).is_none());
    }

    /// Since 0.1.15 workloads carry their pods' disk, so a pod known only by its node's total
    /// asks at most the largest any workload asks, not all of the node's.
    #[test]
    fn pods_known_by_their_total_ask_at_most_the_largest_disk_a_workload_asks() {
        let with_disk = |r: Resources, gib: u64| Resources { ephemeral_storage_bytes: gib * GIB, ..r };
        let cpu = Resources { cpu_millis: 500, memory_bytes: GIB, pods: 1, gpus: 0, ..Resources::ZERO };
        let load = Load { pods: 2, requests: with_disk(cpu.times(2), 40) };
        let disks = || {
            let mut two = vec![target("a", 4000, 8 * GIB, 10), target("b", 4000, 8 * GIB, 10)];
            two.iter_mut().for_each(|t| t.free.ephemeral_storage_bytes = 30 * GIB);
            two
        };
        assert_eq!(place(&load, &with_disk(cpu, 30), 0, &mut disks()).map(|t| t.spread()), Some(2));
        assert!(place(&load, &with_disk(cpu, 35), 0, &mut disks()).is_none(), "one pod may ask 35Gi");
    }
}
