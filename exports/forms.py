from __future__ import annotations

from django import forms
from django.conf import settings
from django.core.exceptions import ValidationError

from exports import filters as export_filters
from exports.engine import file_extension
from exports.layout import validate_template
from exports.models import Dataset, Export

DELIMITERS = [(",", "Comma ,"), (";", "Semicolon ;"), ("\t", "Tab"), ("|", "Pipe |")]
COMPRESSIONS_BY_FORMAT = {
    Export.Format.CSV: {"none", "gzip"},
    Export.Format.NDJSON: {"none", "gzip"},
    Export.Format.PARQUET: {"none", "snappy", "zstd", "gzip"},
}


class ExportForm(forms.ModelForm):
    dataset = forms.ModelChoiceField(
        queryset=Dataset.objects.filter(missing_since__isnull=True).select_related("database"),
        empty_label="Choose a dataset",
    )
    columns = forms.MultipleChoiceField(
        required=False, widget=forms.CheckboxSelectMultiple, help_text="None ticked: every column."
    )
    csv_delimiter = forms.ChoiceField(choices=DELIMITERS, initial=",", label="CSV delimiter")
    rows_per_file = forms.IntegerField(
        min_value=1,
        initial=settings.EXPORT_DEFAULT_ROWS_PER_FILE,
        help_text="A new part file starts after this many rows.",
    )

    class Meta:
        model = Export
        fields = [
            "name",
            "dataset",
            "columns",
            "file_format",
            "compression",
            "csv_delimiter",
            "csv_header",
            "rows_per_file",
            "file_template",
        ]
        labels = {"csv_header": "CSV header row", "file_template": "File name template"}
        help_texts = {
            "compression": "CSV and NDJSON: none or gzip. Parquet: snappy (fastest), zstd, gzip or none.",
            "file_template": "Tokens: %EXPORT_NAME%, %DATASET_NAME%, %DATETIME(YYYYMMdd_HHmmss)%, "
            "%EXPORT_ID%, %DELIVERY_ID%. Files are named <template>-<part>.<extension>.",
        }

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        dataset = self.chosen_dataset()
        if dataset is not None:
            self.fields["columns"].choices = [(c["name"], f"{c['name']} ({c['type']})") for c in dataset.columns]

    def chosen_dataset(self) -> Dataset | None:
        key = self.data.get(self.add_prefix("dataset")) if self.is_bound else self.initial.get("dataset")
        if key is None and self.instance.dataset_id:
            return self.instance.dataset
        if isinstance(key, Dataset):
            return key
        try:
            return self.fields["dataset"].queryset.get(pk=key)
        except (Dataset.DoesNotExist, ValueError, TypeError):
            return None

    def clean_file_template(self):
        template = self.cleaned_data["file_template"].strip()
        validate_template(template, allow_slashes=False)
        return template

    def clean(self):
        cleaned = super().clean()
        file_format, compression = cleaned.get("file_format"), cleaned.get("compression")
        if file_format and compression:
            if compression not in COMPRESSIONS_BY_FORMAT[file_format]:
                self.add_error("compression", f"{compression} is not available for {file_format.upper()} files")
            else:
                file_extension(file_format, compression)
        return cleaned


class FilterForm(forms.Form):
    column = forms.CharField(required=False, widget=forms.TextInput(attrs={"list": "dataset-columns"}))
    operator = forms.ChoiceField(choices=[("", "—")] + list(export_filters.OPERATORS.items()), required=False)
    value = forms.CharField(required=False, help_text="For 'is one of': comma-separated values.")
    value_to = forms.CharField(required=False, label="and")

    def as_spec(self) -> dict | None:
        data = self.cleaned_data
        if not data.get("column") and not data.get("operator"):
            return None
        return {
            "column": data.get("column", "").strip(),
            "operator": data.get("operator", ""),
            "value": data.get("value", ""),
            "value_to": data.get("value_to", ""),
        }


FilterFormSet = forms.formset_factory(FilterForm, extra=3, max_num=50)


def clean_filters(formset, dataset: Dataset | None) -> list[dict] | None:
    """Validate the filter rows against the dataset; errors go on the formset. None if invalid."""
    if not formset.is_valid():
        return None
    specs = [spec for form in formset.forms if (spec := form.as_spec()) is not None]
    if dataset is None:
        return specs
    try:
        export_filters.validate_filters(specs, dataset.columns)
    except ValidationError as exc:
        formset._non_form_errors = formset.error_class(exc.messages)
        return None
    return specs
