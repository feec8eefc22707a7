"""Large-N theory of online (adversarial) training of a two-layer soft committee machine: the glossary, the
ODEs, and the one namespace of the modules that compute them.

Glossary (the linear model's symbols of :mod:`theory.params`, extended):

=============  ==========================================================  ===============
symbol         meaning                                                     domain
=============  ==========================================================  ===============
C, D           clusters of the mixture; dimension of span{B_1..B_D}         preset
mu_c           cluster mean sum_d m_cd B_d, B_d orthonormal
p_c, v_c       cluster prior and isotropic variance per coordinate          > 0
tau_c          label of cluster c                                          {+1, -1}
K              hidden units                                                 K >= 1
w_k            first-layer weights, |w_k| = 1 (renormalised every step)
b_k            thresholds, lambda_k = w_k.xi - b_k
v_k            second-layer weights, sigma(xi) = sum_k v_k erf(lambda_k)
Q_kl           w_k.w_l (Q_kk = 1)                                          Gram matrix
R_kd           w_k.B_d                                                     |R_kd| <= 1
eps            l2 budget of the PGD attack                                 eps >= 0
s, a           PGD steps and step size a*eps (s = 1, a = 1: FGSM-l2)        s >= 1, a > 0
alpha          learning time, steps/N
=============  ==========================================================  ===============

Presets (labels tau, prior p = P(tau = +1), variance v1 for tau = +1 and v2 for tau = -1):
  talk  C = 2, D = 1: means +-(rho/2) B_1, labels +-1 (the linear model's data);
  xor   C = 4, D = 2: +-(rho/2) B_1 labelled +1, +-(rho/2) B_2 labelled -1, each label's prior split
        evenly between its two clusters (priors 1/4 at p = 1/2); no linear classifier beats chance.

Attack (training and evaluation): l2 PGD in input space, delta_0 = 0,
    delta_{t+1} = Proj_{|delta| <= eps}(delta_t + a eps g_t/|g_t|),  g_t = grad_xi L(xi + delta_t, tau),
L = (sigma - tau)^2/2.  g_t = (sigma - tau) sum_k v_k erf'(lambda_k) w_k lies in span{w_k}, so with
delta = sum_k c_k w_k the perturbed fields are lambda + Q c and the whole attack is a map of
(lambda, Q, v, tau) (:func:`attack_fields`).

The ODEs (derivation: docs/committee.md and :mod:`theory.committee_derivation`), with
e_k = (sigma~ - tau) v_k erf'(lambda~_k), u_k = w_k.xi~ = lambda~_k + b_k, y_d = B_d.xi~ and <.> the
average over the mixture and the fields (the attack inside the average):

    dR_kd/dalpha = -eta_w <e_k y_d> + eta_w R_kd <e_k u_k> - (eta_w^2/2) R_kd <v_c e_k^2>
    dQ_kl/dalpha = -eta_w <e_k u_l + e_l u_k> + eta_w Q_kl <e_k u_k + e_l u_l>
                   + eta_w^2 <v_c e_k e_l> - (eta_w^2/2) Q_kl <v_c (e_k^2 + e_l^2)>
    db_k/dalpha  =  eta_b <e_k>,        dv_k/dalpha = -eta_v <(sigma~ - tau) erf(lambda~_k)>.

Given the cluster, lambda ~ N(R m_c - b, v_c Q) and E[B_d.xi | lambda] = m_cd + (R^T Q^+ (h - R m_c))_d
(Gaussian conditioning, h = lambda + b), so every average is a K-dimensional Gaussian average over standard
normal coordinates zeta mapped by a square root of Q (:func:`field_grid`), by a rule of :func:`drift_rule`:
without the attack the closed form ("exact", :mod:`theory.committee.closed_form`), a Gauss-Hermite product grid
("gh:n") or randomised quasi-Monte Carlo ("rqmc:m:r", r fixed scramblings of a
Sobol set, whose spread is the standard error of the average).  :func:`drift_error` returns the drift with an
estimate of its quadrature error (the spread of the scramblings, or the change against a Gauss-Hermite rule of
higher order).  For K = 1, v = 1 and s = 1 the attack is xi - tau eps w and the ODEs are those of
:mod:`theory.ode`.

The code lives in one module per concept; this module gathers them (``theory.committee`` mirrors it):

- :mod:`theory.committee.params`        :class:`CommitteeParams`, the mixture, the state and its packed vector;
- :mod:`theory.committee.local_fields`  the fields given a cluster and the PGD attack on them;
- :mod:`theory.committee.quadrature`    the rules of the K-dimensional Gaussian average and the default per K;
- :mod:`theory.committee.closed_form`   the averages without the attack in closed form (the rule "exact");
- :mod:`theory.committee.dynamics`      the data averages, the drift and its quadrature error estimate;
- :mod:`theory.committee.error_rates`   the test and adversarial errors E and S;
- :mod:`theory.committee.fixed_points`  fixed points and their stability.

Pure mathematics: numpy and scipy, no randomness, no I/O.
"""

from __future__ import annotations

from . import closed_form as _closed_form
from . import dynamics as _drift
from . import error_rates as _errors
from . import local_fields as _fields
from . import fixed_points as _fixed_points
from . import params as _params
from . import quadrature as _quadrature

# every name of the concept modules, the private helpers included (the package and older code import them from
# here); each object is the concept module's own, so there is one definition of everything
for _mod in (_params, _fields, _quadrature, _closed_form, _drift, _errors, _fixed_points):
    globals().update({k: v for k, v in vars(_mod).items()
                      if not (k.startswith("__") and k.endswith("__")) and not isinstance(v, type(_mod))})
del _mod

__all__ = ["CommitteeParams", "Mixture", "State", "PRESETS", "COMMITTEE_FIELD_HELP", "mixture", "field_grid",
           "attack_fields", "drift", "rhs", "pack", "unpack", "errors", "test_error", "adversarial_error",
           "jacobian", "fixed_point", "quadrature_nodes", "qmc_nodes", "rqmc_nodes", "drift_nodes", "GRID_NODES",
           "QMC_LOG2", "ERROR_NODES", "ERROR_QMC_LOG2", "Rule", "drift_rule", "default_rule", "drift_error",
           "drift_from_averages", "averages", "quadrature_error", "rule_for", "may_jump", "exact_averages"]
