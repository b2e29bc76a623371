//! Seeded weights for the random test models. candle's CPU generator cannot be seeded, so a model
//! built from its initialisers would differ on every run, and so would every ranking a test reads
//! from it. [`SeededWeights`] is a `VarBuilder` backend that draws each weight the way its
//! initialiser asks (constant, normal, uniform, Kaiming) from a seeded generator: the same shapes
//! and seed give the same model file on every run and machine.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};

use candle_core::{DType, Device, Shape, Tensor};
use candle_nn::VarBuilder;
use candle_nn::init::{Init, NormalOrUniform};
use candle_nn::var_builder::SimpleBackend;

/// Weights drawn from a seeded generator, kept by name until [`SeededWeights::save`].
#[derive(Clone)]
pub struct SeededWeights {
    state: Arc<Mutex<State>>,
}

struct State {
    rng: fastrand::Rng,
    tensors: HashMap<String, Tensor>,
}

impl State {
    /// One draw from N(0, 1) (Box-Muller).
    fn standard_normal(&mut self) -> f64 {
        let u1 = 1.0 - self.rng.f64(); // in (0, 1]: its log is finite
        let u2 = self.rng.f64();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }

    fn normal(&mut self, shape: &Shape, mean: f64, std: f64) -> candle_core::Result<Tensor> {
        let values: Vec<f32> = (0..shape.elem_count())
            .map(|_| (mean + std * self.standard_normal()) as f32)
            .collect();
        Tensor::from_vec(values, shape, &Device::Cpu)
    }

    fn uniform(&mut self, shape: &Shape, lo: f64, up: f64) -> candle_core::Result<Tensor> {
        let values: Vec<f32> = (0..shape.elem_count())
            .map(|_| (lo + (up - lo) * self.rng.f64()) as f32)
            .collect();
        Tensor::from_vec(values, shape, &Device::Cpu)
    }

    /// A tensor as `init` asks for it (the formulas of candle's `Init::var`).
    fn draw(&mut self, shape: &Shape, init: Init) -> candle_core::Result<Tensor> {
        match init {
            Init::Const(c) => Tensor::full(c as f32, shape, &Device::Cpu),
            Init::Randn { mean, stdev } => self.normal(shape, mean, stdev),
            Init::Uniform { lo, up } => self.uniform(shape, lo, up),
            Init::Kaiming {
                dist,
                fan,
                non_linearity,
            } => {
                let std = non_linearity.gain() / (fan.for_shape(shape) as f64).sqrt();
                match dist {
                    NormalOrUniform::Normal => self.normal(shape, 0.0, std),
                    NormalOrUniform::Uniform => {
                        let bound = 3f64.sqrt() * std;
                        self.uniform(shape, -bound, bound)
                    }
                }
            }
        }
    }
}

impl SeededWeights {
    pub fn new(seed: u64) -> Self {
        SeededWeights {
            state: Arc::new(Mutex::new(State {
                rng: fastrand::Rng::with_seed(seed),
                tensors: HashMap::new(),
            })),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A `VarBuilder` (f32, CPU) whose weights come from this generator, in the order the model
    /// asks for them.
    pub fn var_builder(&self) -> VarBuilder<'static> {
        VarBuilder::from_backend(Box::new(self.clone()), DType::F32, Device::Cpu)
    }

    /// Replaces each weight whose name `pick` accepts by `(w + N(0, std²)) · scale`, where `pick`
    /// returns `(std, scale)`; names are visited in order.
    pub fn perturb(&self, pick: impl Fn(&str) -> Option<(f64, f64)>) -> candle_core::Result<()> {
        let mut state = self.state();
        let mut names: Vec<String> = state.tensors.keys().filter(|n| pick(n).is_some()).cloned().collect();
        names.sort();
        for name in names {
            let (std, scale) = pick(&name).expect("picked");
            let old = state.tensors[&name].clone();
            let noise = state.normal(old.shape(), 0.0, std)?;
            state.tensors.insert(name, ((old + noise)? * scale)?);
        }
        Ok(())
    }

    /// Replaces the weight `name` (drawn already) by `f` of it.
    pub fn update(
        &self,
        name: &str,
        f: impl FnOnce(&Tensor) -> candle_core::Result<Tensor>,
    ) -> candle_core::Result<()> {
        let mut state = self.state();
        let Some(old) = state.tensors.get(name) else {
            candle_core::bail!("{name}: not drawn");
        };
        let new = f(old)?;
        state.tensors.insert(name.to_owned(), new);
        Ok(())
    }

    /// Redraws the weight `name` from N(`mean`, `std`²): for weights a model reads without an
    /// initialiser (candle then gives zeros).
    pub fn redraw(&self, name: &str, mean: f64, std: f64) -> candle_core::Result<()> {
        let mut state = self.state();
        let Some(old) = state.tensors.get(name) else {
            candle_core::bail!("{name}: not drawn");
        };
        let shape = old.shape().clone();
        let new = state.normal(&shape, mean, std)?;
        state.tensors.insert(name.to_owned(), new);
        Ok(())
    }

    /// Writes every weight drawn so far to a safetensors file.
    pub fn save(&self, path: &Path) -> candle_core::Result<()> {
        candle_core::safetensors::save(&self.state().tensors, path)
    }

    /// [`Self::save`] with every weight converted to `dtype`.
    pub fn save_as(&self, path: &Path, dtype: DType) -> candle_core::Result<()> {
        if dtype == DType::F32 {
            return self.save(path);
        }
        let converted = self
            .state()
            .tensors
            .iter()
            .map(|(name, t)| Ok((name.clone(), t.to_dtype(dtype)?)))
            .collect::<candle_core::Result<HashMap<_, _>>>()?;
        candle_core::safetensors::save(&converted, path)
    }
}

impl SimpleBackend for SeededWeights {
    fn get(&self, shape: Shape, name: &str, init: Init, dtype: DType, dev: &Device) -> candle_core::Result<Tensor> {
        let mut state = self.state();
        let tensor = match state.tensors.get(name) {
            Some(t) if t.shape() == &shape => t.clone(),
            Some(t) => candle_core::bail!("{name}: asked for shape {shape:?}, drawn as {:?}", t.shape()),
            None => {
                let t = state.draw(&shape, init)?;
                state.tensors.insert(name.to_string(), t.clone());
                t
            }
        };
        tensor.to_dtype(dtype)?.to_device(dev)
    }

    fn get_unchecked(&self, name: &str, dtype: DType, dev: &Device) -> candle_core::Result<Tensor> {
        match self.state().tensors.get(name) {
            Some(t) => t.to_dtype(dtype)?.to_device(dev),
            None => candle_core::bail!("{name}: not drawn yet, and no shape to draw it with"),
        }
    }

    fn contains_tensor(&self, name: &str) -> bool {
        self.state().tensors.contains_key(name)
    }
}
