# Sourced by the bench scripts: the packed SDK in a private feed and the project files every bench builds against it,
# so each script is only what it measures. Needs $repo (the checkout) and $work (the script's temp folder).

# Packs the SDK into $work/feed and sets $version (a development pack is named for its content). A feed that already
# holds a pack (RETPOLINE_FEED=dir) is used as it is.
pack_sdk() {
  feed=${RETPOLINE_FEED:-$work/feed}
  if [[ -z ${RETPOLINE_FEED:-} ]]; then
    echo "packing the SDK ..." >&2
    dotnet pack "$repo/Tasks/Retpoline.Tasks/Retpoline.Tasks.csproj" -c Release -o "$feed" -nologo -v quiet \
      --artifacts-path "$work/artifacts" >"$work/pack.log" 2>&1 || { cat "$work/pack.log" >&2; exit 2; }
  fi
  [[ -f $feed/Retpoline.Sdk.version ]] || { echo "no Retpoline.Sdk.version in $feed (pack it with dotnet pack -o)" >&2; exit 2; }
  version=$(<"$feed/Retpoline.Sdk.version")
}

# write_exe_project DIR NAME: DIR/NAME.nativeproj, a Release Exe of the sources in DIR, restored from the private
# feed into $work/packages (never the user's own package folder).
write_exe_project() {
  local dir=$1 name=$2
  mkdir -p "$dir"
  cat >"$dir/$name.nativeproj" <<P
<Project Sdk="Retpoline.Sdk/$version">
  <PropertyGroup>
    <OutputType>Exe</OutputType>
    <Configuration>Release</Configuration>
  </PropertyGroup>
</Project>
P
  cat >"$dir/NuGet.config" <<X
<configuration>
  <config><add key="globalPackagesFolder" value="$work/packages" /></config>
  <packageSources><clear /><add key="bench" value="$feed" /></packageSources>
</configuration>
X
}
