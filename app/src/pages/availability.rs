//! `/pools`: availability. Every pool the person may draw from, each host
//! free or taken and until when (who holds it: administrators only), and a
//! two-week calendar of when leases end. Refreshed by live host events.

use leptos::either::{Either, EitherOf3};
use leptos::prelude::*;
use leptos_meta::Title;

use crate::components::alert::{load_error, signed_out};
use crate::hooks::encode;
use crate::live::use_live;
use crate::server_fns::availability::{
    AvailabilityView, Day, PoolAvailability, SlotRow, availability,
};

#[component]
pub fn AvailabilityPage() -> impl IntoView {
    let data = Resource::new(|| (), |_| availability());
    // Refetched on host events once the page runs in the browser (the
    // server's rendering and the hydration read the same answer).
    let live = use_live();
    Effect::watch(
        move || live.last_host.get(),
        move |_, _, _| data.refetch(),
        false,
    );
    view! {
        <Title text="Availability" />
        <Transition fallback=|| view! { <p>"Loading the pools…"</p> }>
            {move || Suspend::new(async move {
                match data.await {
                    Ok(Some(view)) => EitherOf3::A(view! { <Availability view /> }),
                    Ok(None) => EitherOf3::B(signed_out("Availability", "see which nodes are free", "/pools".into())),
                    Err(_) => EitherOf3::C(load_error("Availability")),
                }
            })}
        </Transition>
    }
}

#[component]
fn Availability(view: AvailabilityView) -> impl IntoView {
    let intro = if view.admin {
        "Every pool, each node free or taken and until when (and by whom), and the next two weeks of leases."
    } else {
        "The pools you may draw from: which nodes are free, which are taken and until when, and the next two weeks of leases."
    };
    let empty = view.pools.is_empty();
    let admin = view.admin;
    let days = view.days.clone();
    let pools = view
        .pools
        .into_iter()
        .map(|pool| view! { <PoolCard pool days=days.clone() admin /> })
        .collect_view();
    view! {
        <div class="page-head">
            <h1>"Availability"</h1>
            <p class="lead-small">{intro}</p>
        </div>
        {if empty {
            Either::Left(view! {
                <section class="card">
                    <p>"There is no pool you may draw nodes from yet. Ask the lab's administrators for access."</p>
                </section>
            })
        } else {
            Either::Right(view! { <div class="sections">{pools}</div> })
        }}
    }
}

fn day_class(day: Day) -> &'static str {
    match day {
        Day::Open => "day",
        Day::Taken => "day day-taken",
        Day::Ends => "day day-ends",
        Day::Closed => "day day-closed",
    }
}

fn day_title(day: Day) -> &'static str {
    match day {
        Day::Open => "free",
        Day::Taken => "taken",
        Day::Ends => "lease ends",
        Day::Closed => "out of allocation",
    }
}

#[component]
fn PoolCard(pool: PoolAvailability, days: Vec<(String, String)>, admin: bool) -> impl IntoView {
    let id = format!("pool-{}", pool.name);
    let title_id = format!("{id}-title");
    let counts = format!(
        "{} of {} free · {} taken{}",
        pool.free,
        pool.hosts,
        pool.held,
        pool.lease_hours
            .map(|h| format!(" · leases of {h} h"))
            .unwrap_or_default()
    );
    let heads = days
        .iter()
        .zip(&pool.ending)
        .map(|((weekday, date), ending)| {
            let note = (*ending > 0).then(|| {
                view! {
                    <span class="ending" title=format!("leases ending: {ending}")>
                        {format!("+{ending} free")}
                    </span>
                }
            });
            view! {
                <th scope="col" class="day-head">
                    <span>{weekday.clone()}</span>
                    <span>{date.clone()}</span>
                    {note}
                </th>
            }
        })
        .collect_view();
    let empty = pool.rows.is_empty();
    let rows = pool
        .rows
        .into_iter()
        .map(|row| view! { <Row row admin /> })
        .collect_view();
    let settings = admin.then(|| {
        view! {
            <a class="button button-small button-quiet" href=format!("/pools/{}", encode(&pool.name))>
                "Pool settings"
            </a>
        }
    });
    view! {
        <section class="card" id=id aria-labelledby=title_id.clone()>
            <div class="card-head">
                <h2 id=title_id.clone()>{format!("Pool {}", pool.name)}</h2>
                {settings}
            </div>
            {(!pool.description.is_empty()).then(|| view! { <p>{pool.description.clone()}</p> })}
            <p class="hint">{counts}</p>
            {if empty {
                Either::Left(view! { <p class="hint">"No nodes in this pool yet."</p> })
            } else {
                Either::Right(view! {
                    <div class="calendar-wrap">
                        <table class="table calendar">
                            <thead>
                                <tr>
                                    <th scope="col">"Node"</th>
                                    <th scope="col">"Now"</th>
                                    {admin.then(|| view! { <th scope="col">"Holder"</th> })}
                                    {heads}
                                </tr>
                            </thead>
                            <tbody>{rows}</tbody>
                        </table>
                    </div>
                    <p class="legend">
                        <span><span class="swatch day"></span>"free"</span>
                        <span><span class="swatch day-taken"></span>"taken"</span>
                        <span><span class="swatch day-ends"></span>"lease ends (free again after)"</span>
                        <span><span class="swatch day-closed"></span>"out of allocation"</span>
                    </p>
                })
            }}
        </section>
    }
}

#[component]
fn Row(row: SlotRow, admin: bool) -> impl IntoView {
    let name = match row.id {
        Some(id) => Either::Left(view! { <a href=format!("/hosts/{id}")>{row.name.clone()}</a> }),
        None => Either::Right(view! { <span>{row.name.clone()}</span> }),
    };
    let cells = row
        .days
        .iter()
        .map(|day| view! { <td class=day_class(*day) title=day_title(*day)></td> })
        .collect_view();
    view! {
        <tr>
            <th scope="row">{name}</th>
            <td>
                <span class=format!("slot slot-{}", row.status)>{row.label.clone()}</span>
            </td>
            {admin.then(|| view! { <td>{row.holder.clone().unwrap_or_default()}</td> })}
            {cells}
        </tr>
    }
}
