<#
.SYNOPSIS
  CI only: installs the WDK and SDK NuGet packages and sets, for the following steps, the
  environment variables wdk-build reads to find them (WDKContentRoot, WDKBinRoot, WDKToolRoot,
  Version_Number, WindowsSdkBinPath), as windows-drivers-rs' CI does.
.PARAMETER Version
  10.0.<build>: the newest NuGet revision 10.0.<build>.<n> of the WDK is installed.
.PARAMETER Target
  amd64 or arm64: the architecture the driver is built for (the host is x64).
#>
param(
    [Parameter(Mandatory)] [ValidatePattern('^10\.0\.\d{5}$')] [string] $Version,
    [Parameter(Mandatory)] [ValidateSet('amd64', 'arm64')] [string] $Target
)
Set-StrictMode -Version 3.0
$ErrorActionPreference = 'Stop'
$ProgressPreference = 'SilentlyContinue'

$index = Invoke-RestMethod -Uri 'https://api.nuget.org/v3-flatcontainer/microsoft.windows.wdk.x64/index.json'
$full = $index.versions |
    Where-Object { $_ -like "$Version.*" } |
    Sort-Object { [version]$_ } |
    Select-Object -Last 1
if (-not $full) { throw "No NuGet WDK package $Version.*" }
Write-Host "WDK $full"

$root = 'C:\wdk-nuget'
$targetPackage = @{ amd64 = 'x64'; arm64 = 'ARM64' }[$Target]
foreach ($name in @('Microsoft.Windows.WDK.x64', "Microsoft.Windows.WDK.$targetPackage") | Select-Object -Unique) {
    nuget install $name -Version $full -OutputDirectory $root -NonInteractive
    if ($LASTEXITCODE -ne 0) { throw "nuget install $name $full failed with exit code $LASTEXITCODE" }
}

function Find-Package([string] $Pattern) {
    $found = @(Get-ChildItem -Path $root -Directory | Where-Object { $_.Name -match $Pattern })
    if ($found.Count -ne 1) { throw "Expected one package matching $Pattern, found $($found.Count)" }
    $found[0].FullName
}
$escaped = [regex]::Escape($Version)
$hostWdk = Find-Package "^Microsoft\.Windows\.WDK\.x64\.$escaped\.\d+$"
$targetWdk = Find-Package "^Microsoft\.Windows\.WDK\.$targetPackage\.$escaped\.\d+$"
$sdk = Find-Package "^Microsoft\.Windows\.SDK\.CPP\.$escaped\.\d+$"

$environment = [ordered]@{
    WDKContentRoot    = "$targetWdk\c\"
    WDKBinRoot        = "$hostWdk\c\bin\$Version.0"
    WDKToolRoot       = "$hostWdk\c\tools\$Version.0"
    Version_Number    = "$Version.0"
    WindowsSdkBinPath = "$sdk\c\bin"
}
foreach ($entry in $environment.GetEnumerator()) {
    if ($entry.Key -ne 'Version_Number' -and -not (Test-Path -LiteralPath $entry.Value)) {
        throw "$($entry.Key): $($entry.Value) does not exist"
    }
    Write-Host "$($entry.Key)=$($entry.Value)"
    Add-Content -LiteralPath $env:GITHUB_ENV -Value "$($entry.Key)=$($entry.Value)"
}
