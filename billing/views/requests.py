"""The request log (/dashboard/requests/): every request of the organisation, newest first, filtered, a page at a
time by keyset; one request's detail; the filtered range as CSV. Reads in billing/requestlog.py and
billing/export.py, the same the management API's export calls. Everyone who may see usage (view_usage)."""

from django.core.handlers.asgi import ASGIRequest
from django.http import Http404
from django.shortcuts import render
from django.views.decorators.http import require_GET

from accounts.dashboard import organization_required

from .. import export, requestlog
from .common import currency


def _filter(request) -> requestlog.LogFilter:
    return requestlog.LogFilter(request.GET, organization=request.organization)


@require_GET
@organization_required(action="view_usage")
def requests_log(request):
    form = _filter(request)
    context = {"form": form, "currency": currency(), "shows_cost": requestlog.shows_cost(request.organization)}
    if not form.is_valid():
        return render(request, "billing/dashboard/requests.html", context, status=400)
    try:
        page = requestlog.page_of(
            organization=request.organization,
            filters=requestlog.filters_of(form),
            cursor=request.GET.get("cursor", ""),
        )
    except requestlog.InvalidCursor:
        context["bad_cursor"] = True
        return render(request, "billing/dashboard/requests.html", context, status=400)
    query = request.GET.copy()
    query.pop("cursor", None)
    context.update(page=page, query=query.urlencode(), paged="cursor" in request.GET)
    return render(request, "billing/dashboard/requests.html", context)


@require_GET
@organization_required(action="view_usage")
def request_detail(request, pk: int):
    record = requestlog.record_of(organization=request.organization, pk=pk)
    if record is None:
        raise Http404
    context = {
        "record": record,
        "currency": currency(),
        "shows_cost": requestlog.shows_cost(request.organization),
        "fallback": record.served_model != record.model_name,
    }
    return render(request, "billing/dashboard/requests_detail.html", context)


@require_GET
@organization_required(action="view_usage")
def requests_export(request):
    form = _filter(request)
    if not form.is_valid():
        context = {"form": form, "currency": currency(), "shows_cost": False}
        return render(request, "billing/dashboard/requests.html", context, status=400)
    return export.csv_response(
        organization=request.organization,
        filters=requestlog.filters_of(form),
        cost=requestlog.shows_cost(request.organization),
        asgi=isinstance(request, ASGIRequest),
    )
