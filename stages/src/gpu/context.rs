//! The GPU context (adapter, device, queue, compiled kernels) and the buffer and dispatch helpers
//! every WGSL kernel of the crate uses.
//!
//! One context per process ([`GpuContext::shared`]): opening a device costs tens of milliseconds
//! on a real GPU and far more on a software adapter, and compiled pipelines are kept for the life
//! of the process, keyed by shader, entry point and `override` constants.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use wgpu::util::DeviceExt;

use super::GpuError;

/// What one binding of a kernel's bind group 0 is, in binding order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Binding {
    Uniform,
    /// `var<storage, read>`
    Read,
    /// `var<storage, read_write>`
    ReadWrite,
}

/// A shader module compiled for one set of `override` constants: one pipeline per entry point,
/// all sharing bind group 0's layout.
#[derive(Debug)]
pub struct Kernel {
    layout: wgpu::BindGroupLayout,
    pipelines: HashMap<&'static str, wgpu::ComputePipeline>,
    /// `override workgroup_size` of every entry point
    workgroup: u32,
}

impl Kernel {
    /// The layout of bind group 0, shared by every entry point.
    pub fn layout(&self) -> &wgpu::BindGroupLayout {
        &self.layout
    }

    /// The pipeline of an entry point (a name the kernel was built with).
    pub fn pipeline(&self, entry: &str) -> &wgpu::ComputePipeline {
        self.pipelines
            .get(entry)
            .unwrap_or_else(|| panic!("kernel has no entry point {entry}"))
    }
}

/// An open adapter and device.
#[derive(Debug)]
pub struct GpuContext {
    pub adapter: wgpu::Adapter,
    pub info: wgpu::AdapterInfo,
    pub device: wgpu::Device,
    pub queue: wgpu::Queue,
    /// The limits the device was opened with (the adapter's own).
    pub limits: wgpu::Limits,
    kernels: Mutex<HashMap<String, Arc<Kernel>>>,
    /// Two one-value storage buffers bound where a kernel leaves a binding unused (one for the
    /// read-only bindings, one for the read-write ones), made once.
    placeholders: OnceLock<(wgpu::Buffer, wgpu::Buffer)>,
    /// Set by the device-lost callback.
    lost: Arc<Mutex<Option<String>>>,
    /// A cap on the storage binding below the adapter's, from `CLOT_GPU_MAX_BINDING` (bytes):
    /// a large GPU then splits work as a small one must (for tests, and to reproduce a small
    /// device's behaviour).
    binding_cap: Option<u64>,
}

/// The environment variable that caps the storage binding clot plans against (bytes).
pub const MAX_BINDING_VAR: &str = "CLOT_GPU_MAX_BINDING";

impl GpuContext {
    /// The process's context, opened on first use: the best adapter of any kind (a discrete GPU
    /// over an integrated or virtual one over a software one; Vulkan over GL).
    pub fn shared() -> Result<Arc<GpuContext>, GpuError> {
        static SHARED: OnceLock<Result<Arc<GpuContext>, GpuError>> = OnceLock::new();
        SHARED
            .get_or_init(|| GpuContext::open().map(Arc::new))
            .clone()
    }

    /// Whether the adapter is a software rasteriser (lavapipe, llvmpipe): fine for correctness,
    /// never for speed, so `--device auto` does not take it.
    pub fn is_software(&self) -> bool {
        self.info.device_type == wgpu::DeviceType::Cpu
    }

    /// The adapter in words, for the run summary and the Parquet metadata:
    /// "NVIDIA H200 (Vulkan, NVIDIA 580.1)".
    pub fn describe(&self) -> String {
        let i = &self.info;
        let driver = [i.driver.as_str(), i.driver_info.as_str()]
            .iter()
            .filter(|s| !s.is_empty())
            .copied()
            .collect::<Vec<_>>()
            .join(" ");
        let name = if driver.is_empty() {
            format!("{} ({:?})", i.name, i.backend)
        } else {
            format!("{} ({:?}, {driver})", i.name, i.backend)
        };
        match self.binding_cap {
            Some(cap) => format!("{name} [bindings capped at {cap} bytes by {MAX_BINDING_VAR}]"),
            None => name,
        }
    }

    fn open() -> Result<GpuContext, GpuError> {
        let mut desc = wgpu::InstanceDescriptor::new_without_display_handle_from_env();
        if std::env::var_os("WGPU_BACKEND").is_none() {
            desc.backends = wgpu::Backends::VULKAN | wgpu::Backends::GL;
        }
        let instance = wgpu::Instance::new(desc);
        let adapters = pollster::block_on(instance.enumerate_adapters(wgpu::Backends::all()));
        let rank = |a: &wgpu::Adapter| {
            let info = a.get_info();
            let kind = match info.device_type {
                wgpu::DeviceType::DiscreteGpu => 0,
                wgpu::DeviceType::IntegratedGpu => 1,
                wgpu::DeviceType::VirtualGpu => 2,
                wgpu::DeviceType::Other => 3,
                wgpu::DeviceType::Cpu => 4,
            };
            let backend = if info.backend == wgpu::Backend::Vulkan {
                0
            } else {
                1
            };
            (kind, backend)
        };
        let adapter = adapters
            .into_iter()
            .filter(|a| {
                a.get_downlevel_capabilities()
                    .flags
                    .contains(wgpu::DownlevelFlags::COMPUTE_SHADERS)
            })
            .min_by_key(rank)
            .ok_or_else(|| {
                GpuError::NoAdapter("no Vulkan or GL adapter with compute shaders".into())
            })?;
        let info = adapter.get_info();
        let limits = adapter.limits();
        let name = format!("{} ({:?})", info.name, info.backend);
        let binding_cap = match std::env::var(MAX_BINDING_VAR) {
            Err(_) => None,
            Ok(v) => match v.trim().parse::<u64>() {
                Ok(cap) if cap >= 1024 => Some(cap),
                _ => {
                    return Err(GpuError::RequestDevice {
                        adapter: name,
                        why: format!(
                            "{MAX_BINDING_VAR}={v:?} is not a number of bytes of at least 1024"
                        ),
                    });
                }
            },
        };
        let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
            label: Some("clot"),
            required_features: wgpu::Features::empty(),
            required_limits: limits.clone(),
            experimental_features: wgpu::ExperimentalFeatures::disabled(),
            memory_hints: wgpu::MemoryHints::Performance,
            trace: wgpu::Trace::Off,
        }))
        .map_err(|e| GpuError::RequestDevice {
            adapter: name.clone(),
            why: e.to_string(),
        })?;
        let lost = Arc::new(Mutex::new(None));
        let flag = Arc::clone(&lost);
        device.set_device_lost_callback(move |reason, message| {
            if let Ok(mut l) = flag.lock() {
                *l = Some(format!("device lost ({reason:?}): {message}"));
            }
        });
        Ok(GpuContext {
            adapter,
            info,
            device,
            queue,
            limits,
            kernels: Mutex::new(HashMap::new()),
            placeholders: OnceLock::new(),
            lost,
            binding_cap,
        })
    }

    /// The largest storage binding, in bytes (the adapter's, or less under
    /// `CLOT_GPU_MAX_BINDING`).
    pub fn max_binding(&self) -> u64 {
        self.limits
            .max_storage_buffer_binding_size
            .min(self.limits.max_buffer_size)
            .min(self.binding_cap.unwrap_or(u64::MAX))
    }

    /// Checks that a storage buffer of `bytes` fits the device; `what` says what it is for.
    pub fn check_size(&self, what: impl FnOnce() -> String, bytes: u64) -> Result<(), GpuError> {
        self.check_within(what, bytes, self.max_binding())
    }

    fn check_within(
        &self,
        what: impl FnOnce() -> String,
        bytes: u64,
        limit: u64,
    ) -> Result<(), GpuError> {
        if bytes > limit {
            return Err(GpuError::TooLarge {
                what: what(),
                bytes,
                limit,
                adapter: self.describe(),
            });
        }
        Ok(())
    }

    /// The kernel of a shader for one set of `override` constants (compiled on first use).
    /// `constants` must include `workgroup_size`.
    pub fn kernel(
        &self,
        shader: &'static str,
        source: &'static str,
        bindings: &[Binding],
        entries: &[&'static str],
        constants: &[(&'static str, f64)],
    ) -> Result<Arc<Kernel>, GpuError> {
        let key = format!("{shader}|{constants:?}");
        if let Some(k) = self.kernels.lock().map_err(|_| self.poisoned())?.get(&key) {
            return Ok(Arc::clone(k));
        }
        let workgroup = constants
            .iter()
            .find(|(name, _)| *name == "workgroup_size")
            .map(|&(_, v)| v as u32)
            .ok_or_else(|| GpuError::Unsupported(format!("{shader} without workgroup_size")))?;
        let scope = self.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let module = self
            .device
            .create_shader_module(wgpu::ShaderModuleDescriptor {
                label: Some(shader),
                source: wgpu::ShaderSource::Wgsl(source.into()),
            });
        let entries_layout: Vec<wgpu::BindGroupLayoutEntry> = bindings
            .iter()
            .enumerate()
            .map(|(i, b)| wgpu::BindGroupLayoutEntry {
                binding: i as u32,
                visibility: wgpu::ShaderStages::COMPUTE,
                ty: match b {
                    Binding::Uniform => wgpu::BindingType::Buffer {
                        ty: wgpu::BufferBindingType::Uniform,
                        has_dynamic_offset: false,
                        min_binding_size: None,
                    },
                    Binding::Read | Binding::ReadWrite => wgpu::BindingType::Buffer {
                        ty: wgpu::BufferBindingType::Storage {
                            read_only: *b == Binding::Read,
                        },
                        has_dynamic_offset: false,
                        min_binding_size: None,
                    },
                },
                count: None,
            })
            .collect();
        let layout = self
            .device
            .create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
                label: Some(shader),
                entries: &entries_layout,
            });
        let pipeline_layout = self
            .device
            .create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
                label: Some(shader),
                bind_group_layouts: &[Some(&layout)],
                immediate_size: 0,
            });
        let pipelines = entries
            .iter()
            .map(|&entry| {
                let p = self
                    .device
                    .create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                        label: Some(entry),
                        layout: Some(&pipeline_layout),
                        module: &module,
                        entry_point: Some(entry),
                        compilation_options: wgpu::PipelineCompilationOptions {
                            constants,
                            zero_initialize_workgroup_memory: true,
                        },
                        cache: None,
                    });
                (entry, p)
            })
            .collect();
        if let Some(e) = pollster::block_on(scope.pop()) {
            return Err(self.device_error(format!("compiling {shader}: {e}")));
        }
        let kernel = Arc::new(Kernel {
            layout,
            pipelines,
            workgroup,
        });
        self.kernels
            .lock()
            .map_err(|_| self.poisoned())?
            .insert(key, Arc::clone(&kernel));
        Ok(kernel)
    }

    /// Binds `buffers` as bind group 0 of `kernel`, in binding order.
    /// The group is bound once and reused by every dispatch of a solve.
    pub fn bind(&self, kernel: &Kernel, buffers: &[&wgpu::Buffer]) -> wgpu::BindGroup {
        let parts: Vec<(&wgpu::Buffer, std::ops::Range<u64>)> =
            buffers.iter().map(|&b| (b, 0..b.size())).collect();
        self.bind_parts(kernel, &parts)
    }

    /// [`GpuContext::bind`] with each buffer bound over a byte range (a window of a buffer larger
    /// than one binding may be; ranges start at multiples of the device's storage offset
    /// alignment).
    pub fn bind_parts(
        &self,
        kernel: &Kernel,
        parts: &[(&wgpu::Buffer, std::ops::Range<u64>)],
    ) -> wgpu::BindGroup {
        let entries: Vec<wgpu::BindGroupEntry<'_>> = parts
            .iter()
            .enumerate()
            .map(|(i, (b, range))| wgpu::BindGroupEntry {
                binding: i as u32,
                resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                    buffer: b,
                    offset: range.start,
                    size: wgpu::BufferSize::new(range.end - range.start),
                }),
            })
            .collect();
        self.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: None,
            layout: &kernel.layout,
            entries: &entries,
        })
    }

    /// The placeholder buffers for unused bindings: (read-only, read-write).
    pub fn placeholders(&self) -> (wgpu::Buffer, wgpu::Buffer) {
        self.placeholders
            .get_or_init(|| {
                let make = |label| {
                    self.device.create_buffer(&wgpu::BufferDescriptor {
                        label: Some(label),
                        size: 4,
                        usage: wgpu::BufferUsages::STORAGE,
                        mapped_at_creation: false,
                    })
                };
                (make("unused (read)"), make("unused (read-write)"))
            })
            .clone()
    }

    /// A storage buffer holding `data`.
    pub fn upload<T: bytemuck::Pod>(
        &self,
        label: &str,
        data: &[T],
    ) -> Result<wgpu::Buffer, GpuError> {
        self.upload_within(label, data, self.max_binding())
    }

    /// [`GpuContext::upload`] for a buffer bound in windows ([`GpuContext::bind_parts`]): it
    /// may be as large as the device's largest buffer.
    pub fn upload_windowed<T: bytemuck::Pod>(
        &self,
        label: &str,
        data: &[T],
    ) -> Result<wgpu::Buffer, GpuError> {
        self.upload_within(label, data, self.limits.max_buffer_size)
    }

    fn upload_within<T: bytemuck::Pod>(
        &self,
        label: &str,
        data: &[T],
        limit: u64,
    ) -> Result<wgpu::Buffer, GpuError> {
        let bytes: &[u8] = bytemuck::cast_slice(data);
        self.check_within(|| label.to_string(), bytes.len() as u64, limit)?;
        // zero-sized bindings are invalid: keep at least one element
        let contents = if bytes.is_empty() {
            &[0u8; 4][..]
        } else {
            bytes
        };
        Ok(self
            .device
            .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some(label),
                contents,
                usage: wgpu::BufferUsages::STORAGE
                    | wgpu::BufferUsages::COPY_SRC
                    | wgpu::BufferUsages::COPY_DST,
            }))
    }

    /// A uniform buffer holding `value`.
    pub fn uniform<T: bytemuck::Pod>(&self, label: &str, value: &T) -> wgpu::Buffer {
        self.device
            .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some(label),
                contents: bytemuck::bytes_of(value),
                usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
            })
    }

    /// A zeroed storage buffer of `len` elements of 4 bytes.
    pub fn scratch(&self, label: &str, len: usize) -> Result<wgpu::Buffer, GpuError> {
        self.scratch_within(label, len, self.max_binding())
    }

    /// [`GpuContext::scratch`] for a buffer bound in windows ([`GpuContext::bind_parts`]): it
    /// may be as large as the device's largest buffer.
    pub fn scratch_windowed(&self, label: &str, len: usize) -> Result<wgpu::Buffer, GpuError> {
        self.scratch_within(label, len, self.limits.max_buffer_size)
    }

    fn scratch_within(
        &self,
        label: &str,
        len: usize,
        limit: u64,
    ) -> Result<wgpu::Buffer, GpuError> {
        let bytes = (len.max(1) * 4) as u64;
        self.check_within(|| label.to_string(), bytes, limit)?;
        Ok(self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            size: bytes,
            usage: wgpu::BufferUsages::STORAGE
                | wgpu::BufferUsages::COPY_SRC
                | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        }))
    }

    /// Records a dispatch of `threads` invocations of `entry` (one per item; the shader finds its
    /// item from its workgroup id, the grid width and its local index, and returns past the end). Grids larger than the
    /// device's 1-D limit are laid out in 2-D.
    pub fn dispatch(
        &self,
        pass: &mut wgpu::ComputePass<'_>,
        kernel: &Kernel,
        group: &wgpu::BindGroup,
        entry: &str,
        threads: u64,
    ) {
        let groups = threads.div_ceil(u64::from(kernel.workgroup)).max(1);
        let max = u64::from(self.limits.max_compute_workgroups_per_dimension).max(1);
        let x = groups.min(max);
        let y = groups.div_ceil(x);
        pass.set_pipeline(kernel.pipeline(entry));
        pass.set_bind_group(0, group, &[]);
        pass.dispatch_workgroups(x as u32, y as u32, 1);
    }

    /// Runs `record` in one command encoder, submits it, and reads back `len` f32 values of each
    /// of `outputs`. Validation errors, out-of-memory and device loss become [`GpuError`]s.
    pub fn run_and_read(
        &self,
        label: &str,
        record: impl FnOnce(&mut wgpu::CommandEncoder),
        outputs: &[(&wgpu::Buffer, usize)],
    ) -> Result<Vec<Vec<f32>>, GpuError> {
        let mut submission = self.begin(label);
        record(&mut submission.encoder);
        submission.finish(outputs)
    }

    /// Opens a command encoder under error scopes: what is created and recorded until
    /// [`Submission::finish`] reports its errors there, as a [`GpuError`], instead of panicking.
    pub fn begin(&self, label: &str) -> Submission<'_> {
        let validation = self.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let oom = self.device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let encoder = self
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some(label) });
        Submission {
            ctx: self,
            label: label.to_string(),
            encoder,
            oom,
            validation,
        }
    }

    fn device_error(&self, why: String) -> GpuError {
        let why = match self.lost.lock().ok().and_then(|l| l.clone()) {
            Some(lost) => format!("{why} ({lost})"),
            None => why,
        };
        GpuError::Device {
            adapter: self.describe(),
            why,
        }
    }

    fn poisoned(&self) -> GpuError {
        self.device_error("a thread panicked while compiling a kernel".into())
    }
}

/// A command encoder being recorded under error scopes ([`GpuContext::begin`]); not `Send`,
/// like wgpu's error scopes, which belong to the thread that opened them.
#[derive(Debug)]
pub struct Submission<'c> {
    ctx: &'c GpuContext,
    label: String,
    pub encoder: wgpu::CommandEncoder,
    // Fields drop in declaration order and error scopes must pop in reverse order of their
    // pushes: `oom` (pushed second) stands first, so that a submission dropped unfinished (a
    // kernel's recording failed) pops both without a panic.
    oom: wgpu::ErrorScopeGuard,
    validation: wgpu::ErrorScopeGuard,
}

impl<'c> Submission<'c> {
    /// The context it records for.
    pub fn ctx(&self) -> &'c GpuContext {
        self.ctx
    }

    /// Submits what was recorded and reads back `len` f32 values of each of `outputs`.
    /// Validation errors, out-of-memory and device loss become [`GpuError`]s.
    pub fn finish(self, outputs: &[(&wgpu::Buffer, usize)]) -> Result<Vec<Vec<f32>>, GpuError> {
        let Submission {
            ctx,
            label,
            mut encoder,
            oom,
            validation,
        } = self;
        let label = label.as_str();
        let staging: Vec<(wgpu::Buffer, usize)> = outputs
            .iter()
            .map(|&(buf, len)| {
                let bytes = (len.max(1) * 4) as u64;
                let s = ctx.device.create_buffer(&wgpu::BufferDescriptor {
                    label: Some("readback"),
                    size: bytes,
                    usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                    mapped_at_creation: false,
                });
                encoder.copy_buffer_to_buffer(buf, 0, &s, 0, bytes);
                (s, len)
            })
            .collect();
        ctx.queue.submit([encoder.finish()]);
        let oom = pollster::block_on(oom.pop());
        let validation = pollster::block_on(validation.pop());
        if let Some(e) = validation.or(oom) {
            return Err(ctx.device_error(format!("{label}: {e}")));
        }
        let mut out = Vec::with_capacity(staging.len());
        for (s, len) in &staging {
            let slice = s.slice(..);
            let (tx, rx) = std::sync::mpsc::channel();
            slice.map_async(wgpu::MapMode::Read, move |r| {
                let _ = tx.send(r);
            });
            ctx.device
                .poll(wgpu::PollType::wait_indefinitely())
                .map_err(|e| ctx.device_error(format!("{label}: waiting for the GPU: {e}")))?;
            match rx.recv() {
                Ok(Ok(())) => {}
                Ok(Err(e)) => return Err(ctx.device_error(format!("{label}: reading back: {e}"))),
                Err(_) => {
                    return Err(ctx.device_error(format!("{label}: the read-back was dropped")));
                }
            }
            let data = slice
                .get_mapped_range()
                .map_err(|e| ctx.device_error(format!("{label}: reading back: {e}")))?;
            out.push(bytemuck::cast_slice::<u8, f32>(&data)[..*len].to_vec());
            drop(data);
            s.unmap();
        }
        if let Some(why) = ctx.lost.lock().ok().and_then(|l| l.clone()) {
            return Err(ctx.device_error(why));
        }
        Ok(out)
    }
}
